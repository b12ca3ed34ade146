#!/usr/bin/python3
"""interop_pyzmq.py - the pyzmq side of examples/interop_pyzmq.c.

A plain pyzmq (libzmq) program that knows nothing about ferry: a REP server that upper-cases
each request, and a PUB that publishes a few "status" updates once it has answered. The C
program talks to it with ferry sockets over tcp://, which speaks ZMTP 3.1 like libzmq.

usage: /usr/bin/python3 interop_pyzmq.py REP_URL PUB_URL ROUNDS
"""
import sys
import time

import zmq

rep_url, pub_url, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = zmq.Context()
rep = ctx.socket(zmq.REP)
rep.setsockopt(zmq.RCVTIMEO, 10000)  # fail rather than hang if the C side never comes
rep.bind(rep_url)
pub = ctx.socket(zmq.PUB)
pub.bind(pub_url)

for _ in range(rounds):
    request = rep.recv()
    rep.send(request.upper())

# The subscriber asks for one more request once it has subscribed; publish until then.
deadline = time.time() + 10
while time.time() < deadline:
    pub.send_multipart([b"status", b"pyzmq is up"])
    try:
        rep.send(rep.recv(flags=zmq.NOBLOCK))  # "done": echo and stop
        break
    except zmq.Again:
        time.sleep(0.01)
else:
    sys.exit("interop_pyzmq.py: the C side never said done")

rep.close(linger=5000)
pub.close()
ctx.term()
