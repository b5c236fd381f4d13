"""Minimal pre-login dialogues of POP3, IMAP4 and SMTP submission for pop3lab.hostile: just
enough of each protocol for a client to reach the step a hostile behaviour spoils.

Each dialogue speaks like Exchange before login: its greeting, a capability list naming the
upgrade (STLS, STARTTLS) and, when the behaviour serves an NTLM challenge, NTLM; every login
refused, the upgrade granted, a goodbye. A behaviour replaces one step with a `Hook`: what the
capability request, the upgrade or AUTH NTLM gets instead of the normal reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Each protocol's greeting, and how it begins (for behaviours that garble the rest of it).
GREETINGS = {
    "pop3": "+OK The Microsoft Exchange POP3 service is ready.",
    "imap": "* OK The Microsoft Exchange IMAP4 service is ready.",
    "submission": "220 mail.example.test Microsoft ESMTP MAIL Service ready",
}
OPENINGS = {"pop3": "+OK ", "imap": "* OK ", "submission": "220 "}

# What each protocol says at each step; `{tag}` is the IMAP command's tag.
_SAYS = {
    "pop3": {
        "upgrade": "+OK Begin TLS negotiation.",
        "upgrade_refused": "-ERR Command is not valid in this state.",
        "continue": "+ ",
        "cancelled": "-ERR The AUTH protocol exchange was canceled by the client.",
        "quit": "+OK Microsoft Exchange Server 2016 POP3 server signing off.",
        "refused": "-ERR Command is not valid in this state.",
    },
    "imap": {
        "upgrade": "{tag} OK Begin TLS negotiation now.",
        "upgrade_refused": "{tag} BAD Command received in Invalid state.",
        "continue": "+ ",
        "cancelled": "{tag} NO The AUTH protocol exchange was canceled by the client.",
        "quit": "* BYE Microsoft Exchange Server 2016 IMAP4 server signing off.\r\n"
        "{tag} OK LOGOUT completed.",
        "refused": "{tag} BAD Command received in Invalid state.",
    },
    "submission": {
        "upgrade": "220 2.0.0 SMTP server ready",
        "upgrade_refused": "454 4.7.0 TLS not available due to temporary reason",
        "continue": "334 ",
        "cancelled": "501 5.5.4 Authentication cancelled",
        "quit": "221 2.0.0 Service closing transmission channel",
        "refused": "504 5.7.4 Unrecognized authentication type",
    },
}

# A capability reply as (head, prefix of each line, tail), so hooks can frame lines of their
# own: CAPA's body and its dot, IMAP's untagged CAPABILITY lines and the tagged OK, EHLO's
# `250-` lines and its last `250 ` line.
FRAMES = {
    "pop3": ("+OK\r\n", "", ".\r\n"),
    "imap": ("", "* CAPABILITY ", "{tag} OK CAPABILITY completed.\r\n"),
    "submission": ("250-mail.example.test Hello\r\n", "250-", "250 8BITMIME\r\n"),
}
_LISTED = {
    "pop3": (["TOP", "UIDL", "STLS"], "SASL NTLM"),
    "imap": (["IMAP4 IMAP4rev1 STARTTLS"], " AUTH=NTLM"),
    "submission": (["STARTTLS"], "AUTH NTLM"),
}

# The commands a dialogue tells apart; anything else is refused.
_EVENTS = {
    "CAPA": "capabilities",
    "CAPABILITY": "capabilities",
    "EHLO": "capabilities",
    "STLS": "upgrade",
    "STARTTLS": "upgrade",
    "AUTH NTLM": "ntlm",
    "AUTHENTICATE NTLM": "ntlm",
    "QUIT": "quit",
    "LOGOUT": "quit",
}


@dataclass(frozen=True)
class Turn:
    """One command of the client, as a hook sees it: the stream, the protocol and the tag."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: str
    tag: str = ""

    async def send(self, text: str) -> None:
        """Send `text` (`{tag}` filled in) and wait until the socket took it."""
        self.writer.write(text.replace("{tag}", self.tag).encode("latin-1"))
        await self.writer.drain()

    async def say(self, step: str, rest: str = "") -> None:
        """The protocol's line for `step` (see _SAYS), then `rest`, then CRLF."""
        await self.send(_SAYS[self.protocol][step] + rest + "\r\n")

    @property
    def frame(self) -> tuple[str, str, str]:
        return FRAMES[self.protocol]

    @property
    def continuation(self) -> str:
        """What starts a SASL challenge line: `+ ` or `334 `."""
        return _SAYS[self.protocol]["continue"]


# A hook answers one command in place of the dialogue; it returns whether the dialogue goes on.
Hook = Callable[[Turn], Awaitable[bool]]


def capabilities(protocol: str, *, ntlm: bool) -> str:
    """The normal capability reply, with NTLM listed when asked."""
    lines, ntlm_line = _LISTED[protocol]
    if ntlm and protocol == "imap":
        lines = [lines[0] + ntlm_line]
    elif ntlm:
        lines = [*lines, ntlm_line]
    head, prefix, tail = FRAMES[protocol]
    return head + "".join(f"{prefix}{line}\r\n" for line in lines) + tail


def _parsed(protocol: str, line: bytes) -> tuple[str, str]:
    """The tag (IMAP only) and the event of one command line."""
    text = line.decode("latin-1").strip()
    tag = ""
    if protocol == "imap":
        tag, _, text = text.partition(" ")
    words = text.upper().split()
    # AUTH and AUTHENTICATE are told apart by their mechanism, the rest by the verb alone.
    length = 2 if words[:1] in (["AUTH"], ["AUTHENTICATE"]) else 1
    return tag, _EVENTS.get(" ".join(words[:length]), "")


async def converse(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    protocol: str,
    hooks: dict[str, Hook],
) -> bool:
    """The dialogue on `protocol`, with `hooks` by event (capabilities, upgrade, ntlm). True
    once the upgrade was granted (the client's TLS hello comes next), False when it ends."""
    await Turn(reader, writer, protocol).send(GREETINGS[protocol] + "\r\n")
    while line := await reader.readline():
        tag, event = _parsed(protocol, line)
        turn = Turn(reader, writer, protocol, tag)
        hook = hooks.get(event)
        if hook is not None:
            if not await hook(turn):
                return False
        elif event == "capabilities":
            await turn.send(capabilities(protocol, ntlm="ntlm" in hooks))
        elif event in ("upgrade", "quit"):
            await turn.say(event)
            return event == "upgrade"
        else:
            await turn.say("refused")
    return False


async def refuse_upgrade(turn: Turn) -> bool:
    """A hook: STLS or STARTTLS refused, and the dialogue goes on."""
    await turn.say("upgrade_refused")
    return True
