"""The handofflab cluster topology, for ``mn --custom``.

::

      c1 .. cK --- s1 --- [r0] --- s2 --- fe, be1 .. beN
      10.0.1.0/24                 10.0.2.0/24        (VIP 10.0.100.1)

The Topo itself lives in the package (``handofflab.topo``); this file re-exports
it. Example (no controller, Linux bridges, htb rate limits)::

    mn --custom topologies/cluster.py --topo handofflab,backends=3,clients=1 \
       --switch lxbr --controller none --link tc

(``--switch lxbr`` needs bridge-utils; the package itself uses
``handofflab.topo.IpBridge``, the same bridge driven with iproute2.)
"""
from __future__ import annotations

import sys
from pathlib import Path

_BINDINGS = Path(__file__).resolve().parent.parent / "bindings"
if str(_BINDINGS) not in sys.path:
    sys.path.insert(0, str(_BINDINGS))

from handofflab.topo import ClusterTopo  # noqa: E402

topos = {"handofflab": ClusterTopo}
