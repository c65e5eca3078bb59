"""Request bodies for the serve benches: <out>/single.json (one credit observation) and
<out>/batch.json (`batch` observations), every feature in 0..1 (inside the features' ranges).
Usage: python3 bench/serve_bodies.py <manifest.json> <out dir> <batch>"""
import json
import random
import sys

manifest, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
features = json.load(open(manifest))["roles"]["credit"]["observation"]["features"]
rng = random.Random(7)


def obs():
    return {f: round(rng.uniform(0.0, 1.0), 4) for f in features}


json.dump({"observation": obs()}, open(out + "/single.json", "w"))
json.dump({"observations": [obs() for _ in range(batch)]}, open(out + "/batch.json", "w"))
