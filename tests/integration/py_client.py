#!/usr/bin/env python3
"""A minimal sefl client written from proto/PROTOCOL.md alone (Python ssl,
python3-protobuf and fl_pb2 generated from proto/fl.proto by protoc).

It speaks the protocol honestly (an update is the global shared set scaled
by 0.99, a plausible step; the eval report is in range), or plays one of
the attacks of issue 10 with --attack:
  scale    the update is the global model times 1e6
  report   the EvalReport claims 2^32-1 examples and accuracy 1.0
  declare  Hello and every Update claim 1,000,000 train examples
  stall    stops reading once it holds a TrainTask (and never answers)
  slow     sends its Update one byte every 0.5 s
  diverge  answers every TrainTask with Error{40, training diverged}
It prints one line per event ("py_client NAME: ...") on stdout and exits 0
after --updates updates were sent (0: until Bye{"done"}), or on Bye.
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import time

FNV_BASIS = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3
MASK64 = (1 << 64) - 1
GROUP_BACKBONE, GROUP_SE, GROUP_HEAD = 1, 2, 4
PRIVATE = {"none": 0, "se": 2, "head": 4, "se,head": 6}
ERR_DIVERGED = 40


def fnv1a(h, data):
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def u32(v):
    return struct.pack("<I", v)


def table(r):
    """PROTOCOL.md section 6: (name, shape, groups) in table order."""
    t = [("conv1.weight", [32, 1, 5, 5], 1), ("conv1.bias", [32], 1)]

    def se(prefix, c):
        return [(prefix + ".fc1.weight", [c // r, c], 2), (prefix + ".fc1.bias", [c // r], 2),
                (prefix + ".fc2.weight", [c, c // r], 2), (prefix + ".fc2.bias", [c], 2)]
    t += se("se1", 32)
    t += [("conv2.weight", [64, 32, 5, 5], 1), ("conv2.bias", [64], 1)]
    t += se("se2", 64)
    t += [("fc1.weight", [512, 1024], 1), ("fc1.bias", [512], 1)]
    t += se("se3", 512)
    t += [("fc.weight", [10, 512], 5), ("fc.bias", [10], 5)]
    return t


def table_hash(r):
    h = fnv1a(FNV_BASIS, b"cnn-se\0")
    h = fnv1a(h, u32(r))
    h = fnv1a(h, u32(1))
    for name, shape, groups in table(r):
        h = fnv1a(h, name.encode() + b"\0")
        h = fnv1a(h, u32(len(shape)))
        for d in shape:
            h = fnv1a(h, u32(d))
        h = fnv1a(h, u32(groups))
    return h


class Peer:
    def __init__(self, sock, pb):
        self.s = sock
        self.pb = pb

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return bytes(buf)

    def recv(self):
        (n,) = struct.unpack(">I", self.recv_exact(4))
        env = self.pb.Envelope()
        env.ParseFromString(self.recv_exact(n))
        return env

    def frame(self, env):
        env.version = 1
        data = env.SerializeToString()
        return struct.pack(">I", len(data)) + data

    def send(self, env):
        self.s.sendall(self.frame(env))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--pb-dir", required=True, help="directory holding fl_pb2.py")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--updates", type=int, default=0)
    ap.add_argument("--bind", default="", help="local address to connect from")
    ap.add_argument("--attack", default="none",
                    choices=["none", "scale", "report", "declare", "stall", "slow", "diverge"])
    a = ap.parse_args()
    sys.path.insert(0, a.pb_dir)
    import fl_pb2 as pb

    def say(msg):
        print("py_client %s: %s" % (a.name, msg), flush=True)

    host, port = a.server.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(os.path.join(a.certs, "ca.crt"))
    ctx.load_cert_chain(os.path.join(a.certs, "clients", a.name + ".crt"),
                        os.path.join(a.certs, "clients", a.name + ".key"))
    raw = socket.create_connection((host, int(port)), timeout=120,
                                   source_address=(a.bind, 0) if a.bind else None)
    sock = ctx.wrap_socket(raw, server_hostname=host)
    say("connected %s %s" % (sock.version(), sock.cipher()[0]))
    p = Peer(sock, pb)

    train = 1000000 if a.attack == "declare" else a.train
    hello = pb.Envelope()
    hello.hello.spec.arch = "cnn-se"
    hello.hello.spec.r = a.r
    hello.hello.spec.fc1_gate = True
    hello.hello.spec.table_hash = table_hash(a.r)
    hello.hello.train_examples = train
    hello.hello.test_examples = a.test
    hello.hello.software = "py_client/1"
    p.send(hello)

    sent = 0
    while True:
        env = p.recv()
        kind = env.WhichOneof("msg")
        if kind == "welcome":
            w = env.welcome
            say("welcomed as %s: round %d, private %s, heartbeat %d s" %
                (w.client_id, w.round, w.private_groups, w.heartbeat_seconds))
        elif kind == "heartbeat":
            if not env.heartbeat.reply:
                r = pb.Envelope()
                r.heartbeat.nonce = env.heartbeat.nonce
                r.heartbeat.reply = True
                p.send(r)
        elif kind == "train_task":
            t = env.train_task
            say("train task round %d: %d tensors" % (t.round, len(t.tensors)))
            if a.attack == "stall":
                say("stalling: no more reads")
                while True:
                    time.sleep(3600)
            if a.attack == "diverge":
                e = pb.Envelope()
                e.error.code = ERR_DIVERGED
                e.error.message = "training diverged: loss nan"
                p.send(e)
                say("round %d: sent Error 40" % t.round)
                continue
            factor = 1e6 if a.attack == "scale" else 0.99
            u = pb.Envelope()
            u.update.round = t.round
            u.update.examples = train
            for x in t.tensors:
                n = len(x.data) // 4
                vals = struct.unpack("<%df" % n, x.data)
                y = u.update.tensors.add()
                y.name = x.name
                y.shape.extend(x.shape)
                y.encoding = pb.F32
                y.data = struct.pack("<%df" % n, *[v * factor for v in vals])
            u.update.train_loss = 0.5
            u.update.train_accuracy = 0.8
            u.update.train_seconds = 0.1
            if a.attack == "slow":
                data = p.frame(u)
                say("round %d: sending the update one byte every 0.5 s (%d bytes)" %
                    (t.round, len(data)))
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])
                    time.sleep(0.5)
            else:
                p.send(u)
            sent += 1
            say("round %d: update sent (%d)" % (t.round, sent))
            if a.updates and sent >= a.updates:
                say("done after %d updates" % sent)
                return 0
        elif kind == "eval_task":
            t = env.eval_task
            r = pb.Envelope()
            r.eval_report.round = t.round
            if a.attack == "report":
                r.eval_report.examples = 2**32 - 1
                r.eval_report.accuracy = 1.0
                r.eval_report.loss = 0.0
            else:
                r.eval_report.examples = a.test
                r.eval_report.accuracy = 0.5
                r.eval_report.loss = 1.0
            p.send(r)
            say("eval round %d: report sent" % t.round)
        elif kind == "error":
            say("error %d: %s" % (env.error.code, env.error.message))
        elif kind == "bye":
            say("bye: %s" % env.bye.reason)
            return 0
        else:
            say("unexpected %s" % kind)
            return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EOFError, OSError) as e:
        print("py_client: %s" % e, flush=True)
        sys.exit(3)
