"""A real SMTP server for the end-to-end tests (aiosmtpd).

Listens on 127.0.0.1, prints "READY <port>" once accepting, and writes every
message it receives to DIR/<n>.json with its envelope and raw data.
Usage: python3 smtp_sink.py DIR
With SMTP_SINK_AUTH=user:password in the environment it requires AUTH
(PLAIN or LOGIN, allowed without TLS on loopback) with those credentials.
"""
import asyncio
import json
import os
import socket
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        tmp = os.path.join(self.out_dir, f".{self.count}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, f"{self.count}.json"))
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Credentials:
    def __init__(self, spec):
        user, _, password = spec.partition(":")
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == self.user and auth_data.password == self.password
        return AuthResult(success=ok)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    port = free_port()
    auth = os.environ.get("SMTP_SINK_AUTH")
    extra = {}
    if auth:
        # Loopback only: AUTH without TLS is what the test means to exercise.
        warnings.filterwarnings("ignore")
        extra = dict(authenticator=Credentials(auth), auth_required=True, auth_require_tls=False)
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port, **extra)
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        # Run until stdin closes or we are killed.
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
