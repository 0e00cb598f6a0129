"""Mosquitto's shared subscriptions when a subscriber dies: clean against persistent sessions.

Two subscribers share ``$share/g/t`` on a private Mosquitto; one is killed (SIGKILL, so the
broker sees its socket close with no DISCONNECT); 200 messages are then published. How many
reach the survivor, for clean and persistent sessions at QoS 0 and 1, says what an ingest
worker's death costs under each choice (the ingest role uses clean sessions, QoS 0).

    python benchmarks/bench_shared_sessions.py
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from _common import print_header, print_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faults._harness import HOST, Broker, wait_until

_SUBSCRIBER = """
import sys
from pathlib import Path
import paho.mqtt.client as mqtt
port, cid, qos, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[4]), Path(sys.argv[5])
clean = sys.argv[3] == "1"
got = [0]
def on_message(client, userdata, msg):
    got[0] += 1
    out.write_text(str(got[0]))
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
c.on_message = on_message
c.on_connect = lambda client, u, f, rc, p: client.subscribe("$share/g/t", qos=qos)
c.connect("127.0.0.1", port)
out.write_text("0")
c.loop_forever()
"""

N = 200


def trial(work: Path, clean: bool, qos: int) -> int:
    """Messages the survivor received of ``N`` published after the other was killed."""
    broker = Broker(work / f"broker-{int(clean)}-{qos}")
    broker.start()
    procs = []
    try:
        counts = [work / f"a-{int(clean)}-{qos}", work / f"b-{int(clean)}-{qos}"]
        for cid, out in zip(("A", "B"), counts, strict=True):
            args = [str(broker.port), cid, "1" if clean else "0", str(qos), str(out)]
            procs.append(subprocess.Popen([sys.executable, "-c", _SUBSCRIBER, *args]))
        wait_until(lambda: all(c.exists() for c in counts), 20, "both subscribers")
        time.sleep(1.0)  # their subscriptions in place
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        time.sleep(0.5)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
        pub.connect(HOST, broker.port)
        pub.loop_start()
        for _ in range(N):
            pub.publish("t", b"x", qos=qos)
            time.sleep(0.005)
        time.sleep(2.0)
        pub.loop_stop()
        pub.disconnect()
        return int(counts[1].read_text() or 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        broker.stop()


def main() -> None:
    print_header("Shared subscriptions: what reaches the survivor after a subscriber dies")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
        for clean in (True, False):
            for qos in (0, 1):
                got = trial(Path(tmp), clean, qos)
                rows.append(
                    ("clean" if clean else "persistent", qos, f"{got} of {N}", f"{N - got}")
                )
    print_table("Survivor", ["session", "QoS", "survivor received", "not received"], rows)


if __name__ == "__main__":
    main()
