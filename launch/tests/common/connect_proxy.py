"""An HTTPS proxy for tests: answers `CONNECT HOST:PORT` by tunnelling bytes to HOST:PORT, as a
hospital's or a cluster's outbound proxy does, and appends each request line to LOG (with
`auth` when the client sent Proxy-Authorization). It refuses every other method.

Usage: python3 connect_proxy.py PORT LOG
"""

import socket
import sys
import threading


def pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client, log):
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(4096)
        if not data:
            client.close()
            return
        head += data
    head, early = head.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    auth = any(line.lower().startswith("proxy-authorization:") for line in lines[1:])
    with open(log, "a") as f:
        f.write(f"{method} {target}{' auth' if auth else ''}\n")
    if method != "CONNECT":
        client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
        client.close()
        return
    host, port = target.rsplit(":", 1)
    upstream = socket.create_connection((host, int(port)))
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    if early:
        upstream.sendall(early)
    back = threading.Thread(target=pipe, args=(upstream, client))
    back.start()
    pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main():
    port, log = int(sys.argv[1]), sys.argv[2]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handle, args=(client, log), daemon=True).start()


main()
