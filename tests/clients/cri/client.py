#!/usr/bin/python3
"""A small CRI (runtime.v1) client for tests: a crictl stand-in.

Stubs are generated at run time with grpc_tools.protoc from the CRI api.proto
that Debian's golang-k8s-cri-api-dev ships (CRI_PROTO=/path/api.proto, or the
installed package, or hack/clients/fetch.sh SUITE golang-k8s-cri-api-dev).
They go to --gen-dir (kept, reused on the next call: pass the same dir to
save ~0.2 s per call) or to a temp dir removed on exit.

usage: client.py [--endpoint unix:///run/x.sock] [--gen-dir DIR] COMMAND ...
  version | info                      runtime version / status (json)
  runp [--runtime H] POD.json         run a pod sandbox, prints its id
  stopp ID | rmp ID | inspectp ID     stop / remove / status (json) of a pod
  pods                                list pod ids
  create POD_ID CTR.json POD.json     create a container, prints its id
  start ID | rm ID                    start / remove a container
  stop [--timeout S] ID               stop a container (S=0: SIGKILL at once)
  inspect ID                          container status (json)
  ps [--pod ID]                       list container ids
  exec-sync [--timeout S] ID -- CMD.. run CMD in ID: its stdout/stderr are
                                      printed, its exit code is ours
  image ID                            image status (json, {} if absent)
Configs are CRI messages as JSON (proto or lowerCamel field names).
Debian's python3-grpcio and python3-grpc-tools are needed (/usr/bin/python3).
"""
import argparse
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PROTO_REL = "usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto"


def find_proto():
    p = os.environ.get("CRI_PROTO")
    if p:
        return p
    if os.path.exists("/" + PROTO_REL):
        return "/" + PROTO_REL
    # Not in bookworm: unpack from a newer suite into fetch.sh's private root.
    for suite in ("sid", "trixie"):
        r = subprocess.run(["bash", os.path.join(ROOT, "hack/clients/fetch.sh"), suite,
                            "golang-k8s-cri-api-dev"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        p = os.path.join(r.stdout.strip(), PROTO_REL)
        if r.returncode == 0 and os.path.exists(p):
            return p
    sys.exit("client.py: no CRI api.proto (set CRI_PROTO or install golang-k8s-cri-api-dev)")


def clean_proto(text):
    """Drop what an old protoc (grpc_tools 1.14 bundles protoc 3.5) cannot
    parse: gogoproto imports and options (older cri-api releases) and newer
    field options such as debug_redact."""
    text = re.sub(r'(?m)^\s*import\s+"[^"]*gogo[^"]*";\s*$', "", text)
    text = re.sub(r'(?m)^\s*option\s+\(gogoproto\.[^;]*;\s*$', "", text)

    def opts(m):
        kept = [o for o in m.group(1).split(",")
                if o.strip() and not re.match(r"\s*(\(gogoproto\.\w+\)|debug_redact)\s*=", o)]
        return " [" + ",".join(kept).strip() + "]" if kept else ""
    return re.sub(r"\s*\[([^\]\[]*=[^\]\[]*)\](?=\s*;)", opts, text)


def load_stubs(gen_dir):
    src = open(find_proto()).read()
    text = clean_proto(src)
    d = os.path.join(gen_dir, hashlib.sha256(text.encode()).hexdigest()[:16])
    if not os.path.exists(os.path.join(d, "api_pb2_grpc.py")):
        tmp = tempfile.mkdtemp(dir=gen_dir)
        with open(os.path.join(tmp, "api.proto"), "w") as f:
            f.write(text)
        try:
            from grpc_tools import protoc
        except ImportError:
            sys.exit("client.py: apt-get install python3-grpc-tools (and run with /usr/bin/python3)")
        inc = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        args = ["protoc", "-I" + tmp, "--python_out=" + tmp, "--grpc_python_out=" + tmp]
        if os.path.isdir(inc):
            args.append("-I" + inc)
        if protoc.main(args + [os.path.join(tmp, "api.proto")]) != 0:
            sys.exit("client.py: protoc failed on api.proto")
        try:
            os.rename(tmp, d)
        except OSError:  # another call generated it first
            shutil.rmtree(tmp, ignore_errors=True)
    sys.path.insert(0, d)
    return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")


def main():
    ap = argparse.ArgumentParser(description="small CRI client")
    ap.add_argument("--endpoint", default=os.environ.get("CRI_ENDPOINT",
                                                         "unix:///run/containerd/containerd.sock"))
    ap.add_argument("--gen-dir", default=os.environ.get("CRI_GEN_DIR"))
    ap.add_argument("--rpc-timeout", type=float, default=60)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    sub.add_parser("info")
    p = sub.add_parser("runp"); p.add_argument("--runtime", default=""); p.add_argument("pod")
    for c in ("stopp", "rmp", "inspectp", "start", "rm", "inspect", "image"):
        sub.add_parser(c).add_argument("id")
    sub.add_parser("pods")
    p = sub.add_parser("create"); p.add_argument("pod_id"); p.add_argument("ctr"); p.add_argument("pod")
    p = sub.add_parser("stop"); p.add_argument("--timeout", type=int, default=10); p.add_argument("id")
    p = sub.add_parser("ps"); p.add_argument("--pod", default="")
    p = sub.add_parser("exec-sync"); p.add_argument("--timeout", type=int, default=0)
    p.add_argument("id"); p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("exec-stream")
    p.add_argument("id"); p.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args()

    tmp = None
    if not a.gen_dir:
        tmp = a.gen_dir = tempfile.mkdtemp(prefix="cri-client.")
    os.makedirs(a.gen_dir, exist_ok=True)
    try:
        return run(a, *load_stubs(a.gen_dir))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run(a, pb, pbg):
    import grpc
    from google.protobuf import json_format

    def msg(cls, path):
        with open(path) as f:
            return json_format.ParseDict(json.load(f), cls())

    def dump(m):
        print(json_format.MessageToJson(m, preserving_proto_field_name=True,
                                       including_default_value_fields=True, indent=1))

    ch = grpc.insecure_channel(a.endpoint)
    rt, im = pbg.RuntimeServiceStub(ch), pbg.ImageServiceStub(ch)
    t = a.rpc_timeout
    try:
        if a.cmd == "version":
            dump(rt.Version(pb.VersionRequest(), timeout=t))
        elif a.cmd == "info":
            dump(rt.Status(pb.StatusRequest(verbose=True), timeout=t))
        elif a.cmd == "runp":
            r = rt.RunPodSandbox(pb.RunPodSandboxRequest(
                config=msg(pb.PodSandboxConfig, a.pod), runtime_handler=a.runtime), timeout=t)
            print(r.pod_sandbox_id)
        elif a.cmd == "stopp":
            rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=a.id), timeout=t)
        elif a.cmd == "rmp":
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=a.id), timeout=t)
        elif a.cmd == "inspectp":
            dump(rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=a.id, verbose=True), timeout=t))
        elif a.cmd == "pods":
            for s in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=t).items:
                print(s.id)
        elif a.cmd == "create":
            r = rt.CreateContainer(pb.CreateContainerRequest(
                pod_sandbox_id=a.pod_id, config=msg(pb.ContainerConfig, a.ctr),
                sandbox_config=msg(pb.PodSandboxConfig, a.pod)), timeout=t)
            print(r.container_id)
        elif a.cmd == "start":
            rt.StartContainer(pb.StartContainerRequest(container_id=a.id), timeout=t)
        elif a.cmd == "stop":
            rt.StopContainer(pb.StopContainerRequest(container_id=a.id, timeout=a.timeout),
                             timeout=t + a.timeout)
        elif a.cmd == "rm":
            rt.RemoveContainer(pb.RemoveContainerRequest(container_id=a.id), timeout=t)
        elif a.cmd == "inspect":
            dump(rt.ContainerStatus(pb.ContainerStatusRequest(container_id=a.id, verbose=True), timeout=t))
        elif a.cmd == "ps":
            f = pb.ContainerFilter(pod_sandbox_id=a.pod)
            for c in rt.ListContainers(pb.ListContainersRequest(filter=f), timeout=t).containers:
                print(c.id)
        elif a.cmd == "exec-sync":
            argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            r = rt.ExecSync(pb.ExecSyncRequest(container_id=a.id, cmd=argv, timeout=a.timeout),
                            timeout=t + a.timeout)
            sys.stdout.buffer.write(r.stdout); sys.stdout.flush()
            sys.stderr.buffer.write(r.stderr); sys.stderr.flush()
            return r.exit_code
        elif a.cmd == "exec-stream":
            # kubectl exec -i: the Exec RPC gives a URL of the streaming
            # server; stdin (from ours) and stdout go over a websocket.
            argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            r = rt.Exec(pb.ExecRequest(container_id=a.id, cmd=argv, stdin=True,
                                       stdout=True, stderr=True), timeout=t)
            return exec_stream(r.url)
        elif a.cmd == "image":
            dump(im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=a.id)), timeout=t))
    except grpc.RpcError as e:
        print("client.py %s: %s: %s" % (a.cmd, e.code().name, e.details()), file=sys.stderr)
        return 125
    return 0


def exec_stream(url):
    """A minimal websocket client of the streaming server's channel
    protocol (v4.channel.k8s.io): each binary frame starts with its stream
    (0 stdin, 1 stdout, 2 stderr, 3 status). Sends all of our stdin, copies
    stdout and stderr through, and returns the exit code the status gives."""
    import base64, os, socket, struct, threading, urllib.parse
    u = urllib.parse.urlparse(url)
    # Bounded: a stream that stalls (input lost on the way) fails the test
    # instead of hanging it.
    conn = socket.create_connection((u.hostname, u.port or 80), timeout=120)
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall((
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        % (u.path + ("?" + u.query if u.query else ""), u.netloc, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(1)
        if not chunk:
            raise SystemExit("exec-stream: connection closed during the handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit("exec-stream: handshake refused: %r" % head[:200])

    def send(payload, opcode=2):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        conn.sendall(hdr + mask + body)

    def recv_exact(n):
        buf = b""
        while len(buf) < n:
            c = conn.recv(n - len(buf))
            if not c:
                return None
            buf += c
        return buf

    def feeder():
        while True:
            data = sys.stdin.buffer.read1(32 * 1024)
            if not data:
                return
            send(b"\x00" + data)

    threading.Thread(target=feeder, daemon=True).start()
    status = None
    while True:
        h = recv_exact(2)
        if h is None:
            break
        opcode, n = h[0] & 0x0F, h[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(8))[0]
        payload = recv_exact(n) or b""
        if opcode == 8:
            break
        if opcode != 2 or not payload:
            continue
        ch, data = payload[0], payload[1:]
        if ch == 1:
            sys.stdout.buffer.write(data); sys.stdout.flush()
        elif ch == 2:
            sys.stderr.buffer.write(data); sys.stderr.flush()
        elif ch == 3 and data:
            status = json.loads(data)
    if status is None or status.get("status") == "Success":
        return 0
    for c in status.get("details", {}).get("causes", []):
        if c.get("reason") == "ExitCode":
            return int(c.get("message", 1))
    return 1


if __name__ == "__main__":
    sys.exit(main())
