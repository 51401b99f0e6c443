"""POP3 notes: commands and states (RFC 1939), CAPA and response codes (RFC 2449), SASL AUTH
(RFC 5034), STLS (RFC 2595), the AUTH and SYS codes (RFC 3206). Data, not code."""

from __future__ import annotations

from tuimail.teaching.notes import table

COMMANDS = table({
    "USER": ("RFC 1939 §7", "AUTHORIZATION state: names the mailbox to log in to.",
             "Состояние AUTHORIZATION: называет почтовый ящик для входа."),
    "PASS": ("RFC 1939 §7", "AUTHORIZATION state: the password for USER; on +OK the session enters the TRANSACTION state.",
             "Состояние AUTHORIZATION: пароль для USER; после +OK сессия переходит в состояние TRANSACTION."),
    "APOP": ("RFC 1939 §7", "Logs in with an MD5 digest of the greeting's timestamp and a shared secret.",
             "Вход с MD5-хэшем метки времени из приветствия и общего секрета."),
    "AUTH": ("RFC 5034 §4", "Logs in with a SASL mechanism (PLAIN, LOGIN, or SCRAM-SHA-256, which proves the "
                            "password without sending it); the answers to \"+ \" are base64.",
             "Вход по механизму SASL (PLAIN, LOGIN или SCRAM-SHA-256, который доказывает знание пароля, не "
             "передавая его); ответы на «+ » передаются в base64."),
    "CAPA": ("RFC 2449 §5", "Asks which capabilities the server has (a list ended by a dot).",
             "Запрашивает возможности сервера (список, заканчивающийся точкой)."),
    "STLS": ("RFC 2595 §4", "Switches the connection to TLS before logging in.",
             "Переводит соединение на TLS перед входом."),
    "STAT": ("RFC 1939 §5", "TRANSACTION state: the number of messages and their total size in octets.",
             "Состояние TRANSACTION: число писем и их общий размер в октетах."),
    "LIST": ("RFC 1939 §5", "TRANSACTION state: each message's number and size (or one message's).",
             "Состояние TRANSACTION: номер и размер каждого письма (или одного письма)."),
    "UIDL": ("RFC 1939 §7", "TRANSACTION state: each message's unique id, which stays the same across sessions.",
             "Состояние TRANSACTION: уникальный идентификатор каждого письма, не меняющийся между сессиями."),
    "RETR": ("RFC 1939 §5", "TRANSACTION state: sends the whole message, ended by a line with a single dot.",
             "Состояние TRANSACTION: передаёт письмо целиком, в конце строка с одной точкой."),
    "TOP": ("RFC 1939 §7", "TRANSACTION state: sends the headers and the first N lines of the body.",
            "Состояние TRANSACTION: передаёт заголовки и первые N строк тела письма."),
    "DELE": ("RFC 1939 §5", "TRANSACTION state: marks a message deleted; it is removed at QUIT (UPDATE state).",
             "Состояние TRANSACTION: помечает письмо удалённым; оно удаляется при QUIT (состояние UPDATE)."),
    "NOOP": ("RFC 1939 §5", "Does nothing; the server answers +OK.", "Ничего не делает; сервер отвечает +OK."),
    "RSET": ("RFC 1939 §5", "Unmarks every message marked deleted in this session.",
             "Снимает пометку удаления со всех писем, помеченных в этой сессии."),
    "QUIT": ("RFC 1939 §6", "Ends the session; in TRANSACTION state the server enters UPDATE and removes deleted messages.",
             "Завершает сессию; в состоянии TRANSACTION сервер переходит в UPDATE и удаляет помеченные письма."),
})

REPLIES = table({
    "+OK": ("RFC 1939 §3", "Positive reply: the command succeeded.", "Положительный ответ: команда выполнена."),
    "-ERR": ("RFC 1939 §3", "Negative reply: the command failed; the text says why.",
             "Отрицательный ответ: команда не выполнена; текст объясняет причину."),
    "+": ("RFC 5034 §4", "SASL challenge (base64): send the next part of the login, in base64.",
          "Запрос SASL (base64): отправьте следующую часть данных входа в base64."),
    ".": ("RFC 1939 §3", "End of a multi-line reply.", "Конец многострочного ответа."),
    # the reply to a command, where it says more than "+OK" alone (RFC 1939 §3-§6: the states)
    "greeting": ("RFC 1939 §4", "Greeting: the session is in the AUTHORIZATION state.",
                 "Приветствие: сессия в состоянии AUTHORIZATION."),
    "PASS +OK": ("RFC 1939 §6", "Logged in: the mailbox is locked and the session is in the TRANSACTION state.",
                 "Вход выполнен: ящик заблокирован, сессия в состоянии TRANSACTION."),
    "QUIT +OK": ("RFC 1939 §6", "UPDATE state: messages marked deleted are removed; the connection closes.",
                 "Состояние UPDATE: помеченные письма удалены; соединение закрывается."),
    "RETR +OK": ("RFC 1939 §5", "The message follows (not shown in the log), then a line with a dot.",
                 "Далее следует письмо (в лог не записывается), затем строка с точкой."),
})

# RFC 2449 §8: a response code in brackets after -ERR, for programs to act on.
CODES = table({
    "AUTH": ("RFC 3206 §4", "The login failed because of the credentials (not a temporary problem).",
             "Вход не удался из-за неверных данных (а не временной проблемы)."),
    "IN-USE": ("RFC 2449 §8.1.1", "The mailbox is in use by another session.", "Ящик уже используется другой сессией."),
    "LOGIN-DELAY": ("RFC 2449 §8.1.2", "Logged in too soon after the last time.", "Повторный вход слишком рано."),
    "SYS/TEMP": ("RFC 3206 §5", "A temporary server problem; try again later.", "Временная проблема сервера; повторите позже."),
    "SYS/PERM": ("RFC 3206 §5", "A permanent server problem.", "Постоянная проблема сервера."),
})

# RFC 2449 §6: the lines of the reply to CAPA.
CAPABILITIES = table({
    "TOP": ("RFC 2449 §6.1", "The TOP command is available.", "Доступна команда TOP."),
    "USER": ("RFC 2449 §6.2", "USER and PASS logins are accepted.", "Принимается вход командами USER и PASS."),
    "SASL": ("RFC 2449 §6.3", "AUTH with the SASL mechanisms listed.", "AUTH с перечисленными механизмами SASL."),
    "RESP-CODES": ("RFC 2449 §6.4", "-ERR replies may carry response codes in brackets.",
                   "Ответы -ERR могут содержать коды в квадратных скобках."),
    "AUTH-RESP-CODE": ("RFC 3206 §3", "A failed login says [AUTH] or [SYS/...].", "Неудачный вход сообщает [AUTH] или [SYS/...]."),
    "PIPELINING": ("RFC 2449 §6.6", "Commands may be sent without waiting for each reply.",
                   "Команды можно отправлять, не дожидаясь каждого ответа."),
    "EXPIRE": ("RFC 2449 §6.7", "How long messages are kept on the server (NEVER: until deleted).",
               "Сколько писем хранится на сервере (NEVER: до удаления)."),
    "LOGIN-DELAY": ("RFC 2449 §6.5", "The least time between logins.", "Минимальное время между входами."),
    "UIDL": ("RFC 2449 §6.8", "The UIDL command is available.", "Доступна команда UIDL."),
    "IMPLEMENTATION": ("RFC 2449 §6.9", "The server's software and version.", "Программа и версия сервера."),
    "STLS": ("RFC 2595 §4", "The STLS command is available.", "Доступна команда STLS."),
})

# A client line that is no POP3 command (a typo).
UNKNOWN = table({"": ("RFC 1939 §3", "Not a POP3 command (or not allowed in this state): the server answers -ERR.",
                      "Это не команда POP3 (или она недопустима в этом состоянии): сервер отвечает -ERR.")})[""]
