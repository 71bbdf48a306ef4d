#!/usr/bin/env python3
"""Prints a milter conversation from a packet capture, one line per TCP
segment: time since the first segment and since the previous one, direction,
TCP flags, and the milter packets the segment carries (command letter, and
for a macro packet 'D' the stage it belongs to, e.g. D(T) = DATA macros).
A per-message stall shows as a large gap before a segment that follows an
unanswered one (Nagle's algorithm waiting for a delayed ACK).

  milter_pcap.py CAPTURE.pcap MILTER_PORT

CAPTURE is a classic pcap written by `tcpdump -i lo -w` (Ethernet or Linux
cooked link types, IPv4 or IPv6). Payload is decoded per direction as a byte
stream, so packets split across segments are shown where they end."""
import struct
import sys

LINK_HEADER = {1: 14, 113: 16, 276: 20}  # Ethernet, Linux SLL, SLL2


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    link = struct.unpack(endian + "I", data[20:24])[0]
    if link not in LINK_HEADER:
        sys.exit(f"milter_pcap: unsupported link type {link}")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[off:off + 16])
        if incl < orig:
            sys.exit("milter_pcap: truncated frames; capture with tcpdump -s 0")
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        yield sec + frac / (1e9 if nano else 1e6), frame[LINK_HEADER[link]:]


def tcp_segment(ip):
    """(src_port, dst_port, flags, payload) of an IPv4/IPv6 TCP packet, or None."""
    if not ip:
        return None
    if ip[0] >> 4 == 4:
        if ip[9] != 6:
            return None
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[(ip[0] & 0x0F) * 4:total]
    elif ip[0] >> 4 == 6:
        if ip[6] != 6:
            return None
        tcp = ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
    else:
        return None
    src, dst = struct.unpack("!HH", tcp[:4])
    flags = tcp[13]
    return src, dst, flags, tcp[(tcp[12] >> 4) * 4:]


def flag_text(flags):
    return "".join(c for c, bit in zip("FSRPA", (1, 2, 4, 8, 16)) if flags & bit) or "."


def milter_packets(buffer):
    """Complete milter packets at the start of buffer -> (names, rest)."""
    names = []
    while len(buffer) >= 5:
        size = struct.unpack("!I", buffer[:4])[0]
        if len(buffer) < 4 + size:
            break
        command = chr(buffer[4])
        if command == "D" and size >= 2:
            command += f"({chr(buffer[5])})"
        names.append(command)
        buffer = buffer[4 + size:]
    return names, buffer


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    pending = {"mta>milter": b"", "milter>mta": b""}
    first = previous = None
    for stamp, ip in records(path):
        segment = tcp_segment(ip)
        if not segment or port not in segment[:2]:
            continue
        src, _, flags, payload = segment
        direction = "milter>mta" if src == port else "mta>milter"
        pending[direction] += payload
        names, pending[direction] = milter_packets(pending[direction])
        first = stamp if first is None else first
        gap = 0.0 if previous is None else stamp - previous
        previous = stamp
        print(f"{1000 * (stamp - first):10.3f} ms  +{1000 * gap:8.3f} ms  {direction}  "
              f"{flag_text(flags):5} len={len(payload):<4} {' '.join(names)}")


if __name__ == "__main__":
    main()
