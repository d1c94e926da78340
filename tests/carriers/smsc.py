"""SMPP 3.4 SMSC simulator: the carrier behind Kannel in the SMS tests and bench/channels.py.

Run as ``python -m tests.carriers.smsc --port P --control-port C --log F``.

PDU codec: smpplib (PyPI `smpplib`, command/pdu classes used server-side);
transport: asyncio. One process, one event loop, no threads.

SMPP port (default 2775): accepts bind_transceiver / bind_transmitter /
bind_receiver, enquire_link, unbind, submit_sm, deliver_sm_resp,
enquire_link_resp, generic_nack. Anything else gets generic_nack
(ESME_RINVCMDID).

Destination rule (last digit of destination_addr of a submit_sm):
    ...9  -> submit_sm_resp command_status 0x0000000B ESME_RINVDSTADR (no msg id,
             no receipt)                     -> Kannel DLR 16 (SMSC reject)
    ...0  -> accepted; receipt stat:UNDELIV err:001, message_state 5
                                             -> Kannel DLR 8 then 2
    ...8  -> accepted; intermediate receipt stat:ENROUTE (state 1) then
             DELIVRD                         -> Kannel DLR 8, 4, 1
    ...7  -> accepted; never any receipt     (lost-DLR case) -> only DLR 8
    other -> accepted; receipt stat:DELIVRD err:000, message_state 2
                                             -> Kannel DLR 8 then 1
Receipts are sent only when registered_delivery & 0x03 asks for them
(1 = always, 2 = failure only), after --dlr-delay seconds, as deliver_sm with
esm_class 0x04, source=original destination, destination=original source,
short_message = standard receipt text, plus TLVs receipted_message_id and
message_state (disable with --no-receipt-tlvs to force Kannel to parse the text).

Message ids: --id-style dec (default): decimal string in submit_sm_resp and in
receipt (Kannel msg-id-type unset or 0).  --id-style hexdec: hex in
submit_sm_resp, decimal in the receipt (a common carrier quirk; needs Kannel
msg-id-type = 1).

Control port (HTTP/1.1, JSON, default 2776):
    POST /mo          {"source": "+5511912345678", "dest": "4000", "text": "STOP",
                       "coding": 0|8|"auto", "source_ton": 1, "source_npi": 1,
                       "dest_ton": 0, "dest_npi": 1, "system_id": optional,
                       "tlvs": {"0x1501": "abc"} optional vendor TLVs (str values)}
                      -> sends deliver_sm to a bound receiver/transceiver and
                         returns {"sequence":..,"status":..} once the ESME's
                         deliver_sm_resp arrives (or 503 if nobody is bound).
    GET  /stats       counters and bound sessions
    POST /config      {"dlr_delay": 0.5, "force_submit_status": 0x58 | null,
                       "ack_delay": 0.0}  change behaviour at run time
    POST /disconnect  drop every ESME TCP connection (link failure)
    GET  /health      200 "ok"
PDU log: every PDU received and sent is one JSON line in --log (flushed at least
every 50 ms and on /stats).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import struct
import time

import smpplib.smpp as smpp

GSM_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>"
    "?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXT = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
GSM_EXT_REV = {v: k for k, v in GSM_EXT.items()}

CMD_STATUS = {
    0x00: "ESME_ROK",
    0x0B: "ESME_RINVDSTADR",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x14: "ESME_RMSGQFUL",
    0x58: "ESME_RTHROTTLED",
    0x03: "ESME_RINVCMDID",
    0x45: "ESME_RSUBMITFAIL",
    0x08: "ESME_RSYSERR",
}


def gsm_decode(b: bytes) -> str:
    out, esc = [], False
    for x in b:
        if esc:
            out.append(GSM_EXT.get(x, "?"))
            esc = False
        elif x == 0x1B:
            esc = True
        elif x < len(GSM_TABLE):
            out.append(GSM_TABLE[x])
        else:
            out.append("?")
    return "".join(out)


def gsm_encode(s: str) -> bytes:
    out = bytearray()
    for ch in s:
        if ch in GSM_EXT_REV:
            out += bytes((0x1B, GSM_EXT_REV[ch]))
        else:
            i = GSM_TABLE.find(ch)
            if i < 0 or ch == "\x1b":
                raise UnicodeError(ch)
            out.append(i)
    return bytes(out)


def decode_sm(data: bytes, dcs: int, udhi: bool) -> tuple[str, str]:
    udh = b""
    if udhi and data:
        udh, data = data[: data[0] + 1], data[data[0] + 1 :]
    if dcs in (0, 1):
        txt = gsm_decode(data)
    elif dcs == 8:
        txt = data.decode("utf-16-be", "replace")
    elif dcs == 3:
        txt = data.decode("latin-1")
    else:
        txt = data.hex()
    return txt, udh.hex()


class _SeqClient:  # smpplib wants a "client" that hands out sequence numbers
    sequence = 0

    def next_sequence(self):
        return 0


_SC = _SeqClient()


def make(cmd: str, seq: int, status: int = 0, **kw) -> bytes:
    p = smpp.make_pdu(cmd, client=_SC, **kw)
    p.sequence = seq
    p.status = status
    return p.generate()


def b2s(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return v


class PduLog:
    def __init__(self, path: str | None):
        self.f = open(path, "a", buffering=1 << 16) if path else None  # noqa: SIM115 - closed at exit

    def write(self, rec: dict):
        if self.f:
            self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def flush(self):
        if self.f:
            self.f.flush()


class Sim:
    def __init__(self, args):
        self.args = args
        self.log = PduLog(args.log)
        self.sessions: dict[int, Session] = {}
        self.conn_ids = itertools.count(1)
        self.msg_ids = itertools.count(args.first_id)
        self.pending_receipts: dict[str, list] = {}  # system_id -> [(submit info, final?)]
        self.cfg = {"dlr_delay": args.dlr_delay, "force_submit_status": None, "ack_delay": 0.0}
        self.stats = {
            k: 0
            for k in (
                "binds",
                "submit_sm",
                "submit_ok",
                "submit_rejected",
                "receipts_sent",
                "receipts_acked",
                "mo_sent",
                "mo_acked",
                "enquire_link",
                "unbind",
                "generic_nack_sent",
                "receipts_queued",
            )
        }
        self.started = time.time()

    def rec(self, sess, direction, cmd, seq, status, **fields):
        r = {
            "ts": round(time.time(), 6),
            "conn": sess.cid if sess else None,
            "system_id": sess.system_id if sess else None,
            "dir": direction,
            "cmd": cmd,
            "seq": seq,
            "status": status,
        }
        r.update(fields)
        self.log.write(r)

    def receiver_session(self, system_id=None):
        for s in self.sessions.values():
            if s.bound in ("bind_transceiver", "bind_receiver") and (
                system_id is None or s.system_id == system_id
            ):
                return s
        return None

    # ---- receipts -------------------------------------------------------
    def schedule_receipt(self, info: dict, stat: str, state: int, err: int, delay: float):
        loop = asyncio.get_running_loop()
        loop.call_later(max(delay, 0.0), self.send_receipt, info, stat, state, err)

    def send_receipt(self, info, stat, state, err):
        s = self.receiver_session(info["system_id"])
        if s is None:  # ESME not bound right now: keep it, deliver on next bind
            self.pending_receipts.setdefault(info["system_id"], []).append((info, stat, state, err))
            self.stats["receipts_queued"] += 1
            return
        s.send_receipt(info, stat, state, err)

    def flush_pending(self, sess):
        q = self.pending_receipts.pop(sess.system_id, [])
        for item in q:
            sess.send_receipt(*item)


class Session(asyncio.Protocol):
    def __init__(self, sim: Sim):
        self.sim = sim
        self.cid = next(sim.conn_ids)
        self.buf = bytearray()
        self.seq = itertools.count(1)
        self.bound = None
        self.system_id = None
        self.transport = None
        self.waiters: dict[int, asyncio.Future] = {}
        self.kinds: dict[int, str] = {}

    # asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        self.sim.sessions[self.cid] = self
        peer = transport.get_extra_info("peername")
        self.sim.log.write(
            {"ts": time.time(), "conn": self.cid, "event": "connect", "peer": str(peer)}
        )

    def connection_lost(self, exc):
        self.sim.sessions.pop(self.cid, None)
        self.sim.log.write({"ts": time.time(), "conn": self.cid, "event": "disconnect"})
        for f in self.waiters.values():
            if not f.done():
                f.set_exception(ConnectionError("ESME disconnected"))

    def data_received(self, data):
        self.buf += data
        while len(self.buf) >= 16:
            (length,) = struct.unpack(">L", self.buf[:4])
            if length < 16 or length > 64 * 1024:
                self.transport.close()
                return
            if len(self.buf) < length:
                return
            raw = bytes(self.buf[:length])
            del self.buf[:length]
            self.handle(raw)

    def send(self, raw: bytes, cmd: str, seq: int, status: int = 0, **fields):
        self.sim.rec(self, "out", cmd, seq, status, **fields)
        self.transport.write(raw)

    # ---- inbound --------------------------------------------------------
    def handle(self, raw: bytes):
        cmd_id, status, seq = struct.unpack(">LLL", raw[4:16])
        try:
            p = smpp.parse_pdu(raw, client=_SC, allow_unknown_opt_params=True)
        except Exception as e:  # unknown command or malformed
            self.sim.rec(self, "in", f"0x{cmd_id:08x}", seq, status, error=str(e))
            if not cmd_id & 0x80000000:
                self.sim.stats["generic_nack_sent"] += 1
                self.send(make("generic_nack", seq, 0x03), "generic_nack", seq, 0x03)
            return
        cmd = p.command
        if cmd in ("bind_transceiver", "bind_transmitter", "bind_receiver"):
            self.on_bind(p, cmd, seq)
        elif cmd == "submit_sm":
            self.on_submit(p, seq)
        elif cmd == "enquire_link":
            self.sim.stats["enquire_link"] += 1
            self.sim.rec(self, "in", cmd, seq, status)
            self.send(make("enquire_link_resp", seq), "enquire_link_resp", seq)
        elif cmd == "unbind":
            self.sim.stats["unbind"] += 1
            self.sim.rec(self, "in", cmd, seq, status)
            self.send(make("unbind_resp", seq), "unbind_resp", seq)
            self.bound = None
            self.transport.close()
        elif cmd in ("deliver_sm_resp", "enquire_link_resp", "unbind_resp", "generic_nack"):
            kind = self.kinds.pop(seq, None)
            self.sim.rec(self, "in", cmd, seq, status, kind=kind)
            if kind == "receipt":
                self.sim.stats["receipts_acked"] += 1
            elif kind == "mo":
                self.sim.stats["mo_acked"] += 1
            f = self.waiters.pop(seq, None)
            if f and not f.done():
                f.set_result(status)
        else:
            self.sim.rec(self, "in", cmd, seq, status)
            self.sim.stats["generic_nack_sent"] += 1
            self.send(make("generic_nack", seq, 0x03), "generic_nack", seq, 0x03)

    def on_bind(self, p, cmd, seq):
        a = self.sim.args
        sid, pw, st = b2s(p.system_id), b2s(p.password), b2s(p.system_type)
        self.sim.rec(
            self,
            "in",
            cmd,
            seq,
            0,
            system_id_req=sid,
            system_type=st,
            interface_version=p.interface_version,
        )
        status = 0
        if a.system_id and sid != a.system_id:
            status = 0x0F
        elif a.password and pw != a.password:
            status = 0x0E
        elif self.bound:
            status = 0x05  # ESME_RALYBND
        resp = cmd + "_resp"
        self.send(make(resp, seq, status, system_id=a.smsc_name), resp, seq, status)
        if status == 0:
            self.bound, self.system_id = cmd, sid
            self.sim.stats["binds"] += 1
            if cmd != "bind_transmitter":
                self.sim.flush_pending(self)

    def on_submit(self, p, seq):
        sim, st = self.sim, self.sim.stats
        st["submit_sm"] += 1
        dcs, esm = p.data_coding or 0, p.esm_class or 0
        body = p.short_message or b""
        if not body and getattr(p, "message_payload", None):
            body = p.message_payload
        text, udh = decode_sm(body, dcs, bool(esm & 0x40))
        src, dst = b2s(p.source_addr) or "", b2s(p.destination_addr) or ""
        rd = p.registered_delivery or 0
        fields = dict(
            src=src,
            src_ton=p.source_addr_ton,
            src_npi=p.source_addr_npi,
            dst=dst,
            dst_ton=p.dest_addr_ton,
            dst_npi=p.dest_addr_npi,
            esm_class=esm,
            registered_delivery=rd,
            data_coding=dcs,
            text=text,
            udh=udh,
            sm_hex=body.hex(),
        )
        sim.rec(self, "in", "submit_sm", seq, 0, **fields)
        if self.bound not in ("bind_transceiver", "bind_transmitter"):
            self.send(make("submit_sm_resp", seq, 0x04), "submit_sm_resp", seq, 0x04)  # RINVBNDSTS
            return
        forced = sim.cfg["force_submit_status"]
        last = dst[-1:] if dst else ""
        if forced:
            status = int(forced)
        elif last == "9":
            status = 0x0B
        else:
            status = 0
        if status:
            st["submit_rejected"] += 1
            self._respond(make("submit_sm_resp", seq, status), seq, status, None)
            return
        n = next(sim.msg_ids)
        mid_resp = f"{n:x}" if sim.args.id_style == "hexdec" else str(n)
        mid_rcpt = str(n)
        st["submit_ok"] += 1
        self._respond(make("submit_sm_resp", seq, 0, message_id=mid_resp), seq, 0, mid_resp)
        want = rd & 0x03
        if not want:
            return
        info = dict(
            system_id=self.system_id,
            mid=mid_rcpt,
            src=src,
            dst=dst,
            src_ton=p.source_addr_ton or 0,
            src_npi=p.source_addr_npi or 0,
            dst_ton=p.dest_addr_ton or 0,
            dst_npi=p.dest_addr_npi or 0,
            text=text,
            submit=time.strftime("%y%m%d%H%M"),
        )
        d = sim.cfg["dlr_delay"]
        if last == "7":
            return
        if last == "0":
            sim.schedule_receipt(info, "UNDELIV", 5, 1, d)
        elif want == 1:
            if last == "8":
                sim.schedule_receipt(info, "ENROUTE", 1, 0, d)
                sim.schedule_receipt(info, "DELIVRD", 2, 0, d * 2 + 0.05)
            else:
                sim.schedule_receipt(info, "DELIVRD", 2, 0, d)

    def _respond(self, raw, seq, status, mid):
        delay = self.sim.cfg["ack_delay"]
        if delay:
            asyncio.get_running_loop().call_later(
                delay, self.send, raw, "submit_sm_resp", seq, status
            )
        else:
            self.send(raw, "submit_sm_resp", seq, status, message_id=mid)

    # ---- outbound -------------------------------------------------------
    def send_receipt(self, info, stat, state, err):
        seq = next(self.seq)
        txt = (
            f"id:{info['mid']} sub:001 dlvrd:{1 if stat == 'DELIVRD' else 0:03d} "
            f"submit date:{info['submit']} done date:{time.strftime('%y%m%d%H%M')} "
            f"stat:{stat} err:{err:03d} text:{info['text'][:20]}"
        )
        sm = txt.encode("ascii", "replace")  # receipt text: keep it plain ASCII
        kw = dict(
            service_type="",
            source_addr_ton=info["dst_ton"],
            source_addr_npi=info["dst_npi"],
            source_addr=info["dst"],
            dest_addr_ton=info["src_ton"],
            dest_addr_npi=info["src_npi"],
            destination_addr=info["src"],
            esm_class=0x04,
            data_coding=0,
            short_message=sm,
        )
        if self.sim.args.receipt_tlvs:
            kw.update(receipted_message_id=info["mid"], message_state=state)
        raw = make("deliver_sm", seq, **kw)
        self.kinds[seq] = "receipt"
        self.sim.stats["receipts_sent"] += 1
        self.send(
            raw,
            "deliver_sm",
            seq,
            0,
            kind="receipt",
            src=info["dst"],
            dst=info["src"],
            esm_class=4,
            text=txt,
            message_id=info["mid"],
            stat=stat,
        )

    def send_mo(self, req: dict) -> asyncio.Future:
        text = req.get("text", "")
        coding = req.get("coding", "auto")
        if coding == "auto":
            try:
                body, coding = gsm_encode(text), 0
            except UnicodeError:
                body, coding = text.encode("utf-16-be"), 8
        elif int(coding) == 8:
            body, coding = text.encode("utf-16-be"), 8
        elif int(coding) == 3:
            body, coding = text.encode("latin-1"), 3
        else:
            body, coding = gsm_encode(text), 0
        seq = next(self.seq)
        kw = dict(
            service_type="",
            source_addr_ton=int(req.get("source_ton", 1)),
            source_addr_npi=int(req.get("source_npi", 1)),
            source_addr=req["source"],
            dest_addr_ton=int(req.get("dest_ton", 0)),
            dest_addr_npi=int(req.get("dest_npi", 1)),
            destination_addr=req.get("dest", self.sim.args.short_code),
            esm_class=0,
            data_coding=coding,
            short_message=body,
        )
        raw = make("deliver_sm", seq, **kw)
        tlvs = req.get("tlvs") or {}
        if tlvs:  # vendor TLVs appended raw (tag, len, value)
            extra = b"".join(
                struct.pack(">HH", int(t, 0), len(v.encode())) + v.encode() for t, v in tlvs.items()
            )
            raw = struct.pack(">L", len(raw) + len(extra)) + raw[4:] + extra
        fut = asyncio.get_running_loop().create_future()
        self.waiters[seq] = fut
        self.kinds[seq] = "mo"
        self.sim.stats["mo_sent"] += 1
        self.send(
            raw,
            "deliver_sm",
            seq,
            0,
            kind="mo",
            src=req["source"],
            src_ton=kw["source_addr_ton"],
            src_npi=kw["source_addr_npi"],
            dst=kw["destination_addr"],
            data_coding=coding,
            text=text,
            sm_hex=body.hex(),
            tlvs=tlvs,
        )
        return fut


# ---- control HTTP -----------------------------------------------------------
async def control(sim: Sim, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            method, path, _ = line.decode().split(" ", 2)
            headers = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, v = h.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", 0))
            body = json.loads(await reader.readexactly(n)) if n else {}
            code, out = await route(sim, method, path, body)
            data = json.dumps(out, ensure_ascii=False).encode()
            writer.write(
                b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (code, len(data)) + data
            )
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def route(sim: Sim, method, path, body):
    if path == "/health":
        return 200, "ok"
    if path == "/stats":
        sim.log.flush()
        return 200, {
            "stats": sim.stats,
            "cfg": sim.cfg,
            "uptime": time.time() - sim.started,
            "sessions": [
                {"conn": s.cid, "bound": s.bound, "system_id": s.system_id}
                for s in sim.sessions.values()
            ],
            "pending_receipts": sum(len(v) for v in sim.pending_receipts.values()),
        }
    if path == "/config" and method == "POST":
        sim.cfg.update({k: v for k, v in body.items() if k in sim.cfg})
        return 200, sim.cfg
    if path == "/disconnect" and method == "POST":
        n = 0
        for s in list(sim.sessions.values()):
            s.transport.abort()
            n += 1
        return 200, {"dropped": n}
    if path == "/mo" and method == "POST":
        s = sim.receiver_session(body.get("system_id"))
        if s is None:
            return 503, {"error": "no ESME bound as receiver/transceiver"}
        try:
            fut = s.send_mo(body)
        except (UnicodeError, KeyError, ValueError) as e:
            return 400, {"error": f"cannot encode MO: {e!r}"}
        try:
            status = await asyncio.wait_for(fut, body.get("timeout", 10))
        except (TimeoutError, ConnectionError) as e:
            return 504, {"error": repr(e)}
        finally:
            sim.log.flush()
        return 200, {
            "status": status,
            "status_name": CMD_STATUS.get(status, hex(status)),
            "conn": s.cid,
        }
    return 404, {"error": "not found"}


async def main(args):
    sim = Sim(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Session(sim), args.host, args.port, backlog=1024, reuse_address=True
    )
    ctl = await asyncio.start_server(
        lambda r, w: control(sim, r, w),
        args.host,
        args.control_port,
        backlog=1024,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def flusher():
        while True:
            await asyncio.sleep(0.05)
            sim.log.flush()

    ft = asyncio.create_task(flusher())
    print(
        json.dumps(
            {
                "event": "listening",
                "smpp": args.port,
                "control": args.control_port,
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )
    await stop.wait()
    ft.cancel()
    server.close()
    ctl.close()
    for s in list(sim.sessions.values()):
        s.transport.abort()
    sim.log.write({"ts": time.time(), "event": "shutdown", "stats": sim.stats})
    sim.log.flush()
    print(json.dumps({"event": "stopped", "stats": sim.stats}), flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2775)
    ap.add_argument("--control-port", type=int, default=2776)
    ap.add_argument("--system-id", default="kannel", help="expected ESME system_id ('' = any)")
    ap.add_argument("--password", default="secret", help="expected password ('' = any)")
    ap.add_argument("--smsc-name", default="SIMSMSC", help="system_id in bind_*_resp")
    ap.add_argument("--short-code", default="4000")
    ap.add_argument("--dlr-delay", type=float, default=0.05)
    ap.add_argument("--id-style", choices=("dec", "hexdec"), default="dec")
    ap.add_argument("--first-id", type=int, default=int(time.time()) * 1000 % 10**12)
    ap.add_argument("--no-receipt-tlvs", dest="receipt_tlvs", action="store_false")
    ap.add_argument("--log", default="smsc_pdus.jsonl")
    return ap.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
