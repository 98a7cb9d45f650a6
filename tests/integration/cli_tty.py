#!/usr/bin/env python3
"""Drives lattice-cli's interactive shell on a pseudo-terminal, as a person would.

    cli_tty.py LATTICE_CLI NODES HOME_DIR

Types commands, recalls one with the up arrow, edits a line with the arrow keys,
changes the level and checks the prompt, then quits. Prints the transcript and
exits 0 only if every expectation held. Every read has a deadline.
"""
import os
import pty
import select
import sys
import time

cli, nodes, home = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.environ["HOME"] = home
    os.execv(cli, [cli, "-n", nodes])

transcript = b""
pending = b""  # output read but not yet matched


def expect(text, timeout=5.0):
    """Reads until `text` appears in the output after the previous match."""
    global transcript, pending
    deadline = time.time() + timeout
    want = text.encode()
    while want not in pending:
        left = deadline - time.time()
        if left <= 0:
            sys.stdout.write(transcript.decode(errors="replace"))
            sys.exit(f"cli_tty: did not see {text!r} within {timeout} s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                sys.stdout.write(transcript.decode(errors="replace"))
                sys.exit(f"cli_tty: the shell ended before {text!r}")
            pending += chunk
            transcript += chunk
    pending = pending[pending.index(want) + len(want):]


def send(keys):
    os.write(fd, keys.encode())


PROMPT = "[QUORUM]> "
expect(PROMPT)
send("SET greeting hello\r")
expect("OK")
expect(PROMPT)
send("\x1b[A\r")                    # up arrow: the last command again
expect("OK")
expect(PROMPT)
send("GET greetinx\x7fg\r")          # backspace
expect('"hello"')
expect(PROMPT)
send("ET greeting\x01G\r")           # Ctrl-A, then insert at the start
expect('"hello"')
expect(PROMPT)
send("ECHO ab\x1b[Dx\r")             # left arrow, insert before the last character
expect('"axb"')
expect(PROMPT)
send("CONSISTENCY one\r")
expect("[ONE]> ")
send("CLUSTER NODES\r")
expect("LAST CONTACT")
send("quit\r")
os.waitpid(pid, 0)
history = open(os.path.join(home, ".lattice_cli_history")).read().splitlines()
if "SET greeting hello" not in history or "CONSISTENCY one" not in history:
    sys.exit(f"cli_tty: history file lacks the commands: {history}")
print("cli_tty: ok")
