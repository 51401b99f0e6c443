"""The Textual stylesheets (.tcss), shipped inside the wheel as package tuimail.styles."""
