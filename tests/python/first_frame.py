# SPDX-License-Identifier: MPL-2.0
"""A real vidgear PAIR/REQ-REP receiver that says when its first frame arrived.

    first_frame.py --port P --pattern N

Prints READY once bound, then `FIRST <seconds since READY>` at the first frame, then
keeps receiving until killed.
"""

import argparse
import time

from vidgear.gears import NetGear


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pattern", type=int, default=0)
    args = p.parse_args()
    client = NetGear(
        address="127.0.0.1",
        port=str(args.port),
        pattern=args.pattern,
        receive_mode=True,
        logging=False,
    )
    ready = time.monotonic()
    print("READY", flush=True)
    first = True
    while True:
        frame = client.recv()
        if frame is None:
            break
        if first:
            print("FIRST %.3f" % (time.monotonic() - ready), flush=True)
            first = False
    client.close()


if __name__ == "__main__":
    main()
