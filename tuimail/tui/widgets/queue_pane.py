"""The Queue tab: every recipient waiting in the outbound queue (message id, recipient, next hop,
attempts, last reply, next try), asked of the EngineClient once a second (the runner answers from
memory: no disk reads).
Keys: `r` retry now, `R` retry everything, `d` delete (no bounce), `b` bounce to the sender."""

from __future__ import annotations

import time

from textual.binding import Binding
from textual.widgets import Static

from tuimail.i18n import N_, _, ngettext
from tuimail.outbound import admin  # the Row type only
from tuimail.tui.dialogs.confirm import ConfirmDialog
from tuimail.tui.widgets.table_pane import TablePane

COLUMNS = (N_("id"), N_("recipient"), N_("from"), N_("next hop"), N_("tries"), N_("last reply"), N_("next try"), N_("age"))


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def queue_rows(found: list[admin.Row], now: float) -> list[tuple[str, tuple[str, ...]]]:
    rows = []
    for row in found:
        if row.state != "queued":
            when = row.state
        elif row.next_try <= now:
            when = _("now")
        else:
            when = _("in {time}").format(time=_span(row.next_try - now))
        rows.append((f"{row.id}/{row.recipient}",
                     (row.id, row.recipient, row.mail_from, row.next_hop, str(row.attempts),
                      row.last_reply[:70], when, _span(row.age))))
    return rows


QUEUE_ROWS = 2000  # messages shown at most (`tuimail queue list` shows all)


class QueuePane(TablePane):
    TABLE_ID, SUMMARY_ID, COLUMNS = "queue-table", "queue-summary", COLUMNS
    BINDINGS = [
        Binding("r", "retry", "Retry now"),
        Binding("R", "retry_all", "Retry all", show=False),
        Binding("d", "delete", "Delete"),
        Binding("delete", "delete", "Delete", show=False),
        Binding("b", "bounce", "Bounce"),
    ]

    def summary_text(self) -> str:
        return _("The outbound queue is empty.")

    def on_mount(self) -> None:
        self._shown: list = []
        self.reload()
        self.set_interval(1.0, self.reload)

    def reload(self) -> None:
        if not any(w.group == "queue" and w.is_running for w in self.workers):
            self.run_worker(self._load, group="queue")

    async def _load(self) -> None:
        try:
            found = await self.app.client.queue(limit=QUEUE_ROWS)
        except Exception:  # noqa: BLE001 - the server went away: the header says so
            return
        rows = queue_rows(found, time.time())
        if rows == self._shown:
            return
        self._shown = rows
        table, selected = self.table, self.selected()
        table.clear()
        for key, row in rows:
            table.add_row(*row, key=key)
        keys = [k for k, _ in rows]
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        messages = len({k.split("/")[0] for k in keys})
        summary = (ngettext("{n} recipient", "{n} recipients", len(rows)).format(n=len(rows)) + " "
                   + ngettext("in {n} message waiting", "in {n} messages waiting", messages).format(n=messages)
                   if rows else self.summary_text())
        self.query_one(f"#{self.SUMMARY_ID}", Static).update(summary)

    def _selected_id(self) -> str | None:
        key = self.selected()
        return key.split("/")[0] if key else None

    def action_edit(self) -> None:  # Enter: retry the message under the cursor
        self.action_retry()

    def action_retry(self) -> None:
        qid = self._selected_id()
        if qid:
            self._run(qid, "retry")

    def action_retry_all(self) -> None:
        self._run(None, "retry")

    def action_delete(self) -> None:
        qid = self._selected_id()
        if qid:
            self.app.push_screen(ConfirmDialog(_("Delete {id} from the queue without telling the sender?").format(id=qid)),
                                 lambda yes: self._run(qid, "delete") if yes else None)

    def action_bounce(self) -> None:
        qid = self._selected_id()
        if qid:
            self.app.push_screen(ConfirmDialog(_("Give up on {id} and bounce it to the sender?").format(id=qid)),
                                 lambda yes: self._run(qid, "bounce") if yes else None)

    def _run(self, qid: str | None, what: str) -> None:
        async def work() -> None:
            client = self.app.client
            if what == "retry":
                count = await client.queue_retry(qid)
                self.app.notify(_("{what}: {n} recipient(s) will be tried now").format(
                    what=qid or _("Every message"), n=count))
                return
            done = await (client.queue_delete(qid) if what == "delete" else client.queue_bounce(qid))
            if done:
                self.app.notify(f"{qid}: " + (_("deleted") if what == "delete" else _("bounced to the sender")))
            else:
                self.app.notify(_("{id} is being delivered right now; try again in a moment").format(id=qid),
                                severity="warning")
            self.reload()

        self.run_worker(work(), group="queue-action")
