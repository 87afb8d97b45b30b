"""Naming the program that holds a port (tray/portholder.py): the parsers on each OS's text, and the
Linux lookup on a real socket."""

from __future__ import annotations

import os
import socket

from tray.portholder import Holder, held_message, holder, parse_lsof, parse_netstat, parse_proc_net_tcp

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1167 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 424242 1 0
   1: 0100007F:1167 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 515151 1 0
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 616161 1 0
"""
LSOF = "p812\ncnc\nLbob\nf3\np900\ncother\n"
NETSTAT = """
Active Connections

  Proto  Local Address          Foreign Address        State           PID
  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       1000
  TCP    127.0.0.1:4455         0.0.0.0:0              LISTENING       812
  TCP    127.0.0.1:4455         127.0.0.1:50000        ESTABLISHED     812
"""


def test_parsers() -> None:
    assert parse_proc_net_tcp(PROC_NET_TCP, 4455) == [(424242, 1001)]  # listening only, not the connection
    assert parse_proc_net_tcp(PROC_NET_TCP, 9) == []
    assert parse_lsof(LSOF) == Holder(812, "nc", "bob")
    assert parse_lsof("") is None
    assert parse_netstat(NETSTAT, 4455) == 812 and parse_netstat(NETSTAT, 9) is None


def test_messages() -> None:
    assert held_message(4455, Holder(812, "nc")) == "port 4455 is held by another program (pid 812: nc)"
    by_user = held_message(4455, Holder(user="bob"))
    assert by_user == "port 4455 is held by another program (a program of user bob)"
    assert held_message(4455, None) == "port 4455 is held by another program"


def test_finds_this_process_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        found = holder(sock.getsockname()[1])
    assert found is not None and found.pid == os.getpid()
