#!/usr/bin/env python3
"""A Python grpcio client of infantd over its Unix socket: Start, EachWorker, Events.

Generate the stubs first (docs/grpc-clients.md):

    python3 -m grpc_tools.protoc -I proto --python_out=gen --grpc_python_out=gen proto/infant.proto
    PYTHONPATH=gen python3 examples/grpc_clients/infant_client.py /run/infant/infantd.sock

It starts an inline program `py-demo` (a cluster of two `sleep` workers), lists
its workers, stops it, and prints the events it saw, ending once the program has
stopped. Exit status 0 when all of that happened.
"""

import queue
import sys
import threading

import grpc

import infant_pb2 as pb
import infant_pb2_grpc as rpc

DEADLINE = 20.0


def main(socket_path):
    # Over a Unix socket the authority must be given: `localhost` is what
    # infantd's HTTP/2 server expects.
    channel = grpc.insecure_channel(
        f"unix://{socket_path}", options=[("grpc.default_authority", "localhost")]
    )
    grpc.channel_ready_future(channel).result(timeout=DEADLINE)
    supervisor = rpc.SupervisorStub(channel)

    # An empty request follows live events; read them on a thread.
    events = supervisor.Events(pb.EventsRequest())
    seen = queue.Queue()

    def read_events():
        try:
            for event in events:
                seen.put(event)
        except grpc.RpcError:
            pass  # cancelled at the end

    threading.Thread(target=read_events, daemon=True).start()

    spec = pb.ProgramSpec(
        kind=pb.PROGRAM_KIND_CLUSTER,
        command=["sleep", "1000"],
        count=2,
        start_grace_ms=50,
    )
    info = supervisor.Start(pb.StartRequest(name="py-demo", spec=spec), timeout=DEADLINE)
    print(f"started {info.name}: {pb.ProgramStatus.Name(info.status)}, {info.running}/{info.count}")

    workers = list(supervisor.EachWorker(pb.EachWorkerRequest(name="py-demo"), timeout=DEADLINE))
    for worker in workers:
        print(f"worker {worker.program}/{worker.id} pid {worker.pid} "
              f"{pb.InstanceStatus.Name(worker.status)}")
    if len(workers) != 2:
        print(f"expected 2 workers, got {len(workers)}", file=sys.stderr)
        return 1

    supervisor.Stop(pb.StopRequest(name="py-demo"), timeout=DEADLINE)
    try:
        while True:
            event = seen.get(timeout=DEADLINE)
            print(f"event {event.seq} {pb.EventKind.Name(event.kind)} {event.program}/{event.worker}")
            if event.program == "py-demo" and event.kind == pb.EVENT_KIND_STOPPED:
                break
    except queue.Empty:
        print("no `stopped` event for py-demo", file=sys.stderr)
        return 1
    finally:
        events.cancel()
    print("py-demo stopped")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: infant_client.py SOCKET")
    sys.exit(main(sys.argv[1]))
