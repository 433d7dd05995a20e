"""Errors the chat core raises; their message is shown to the user as is."""


class ChatError(Exception):
    """A request the core refuses; ``str(error)`` tells the user why."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "refused"


class RefusedError(ChatError):
    """A connection the core will not take (server full, banned)."""


class NotOperatorError(ChatError):
    """A privileged command from a member who is not an operator."""

    def __init__(self, command: str) -> None:
        super().__init__(f"{command} needs operator rights (/oper NAME PASSWORD)")
