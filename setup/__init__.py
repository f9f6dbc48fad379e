"""canary-setup: provision the lab's canary topology on a cluster (kubectl/istioctl) or locally on real Envoy.

Bottom up (README "Architecture"): ``errors``, ``privatefs``, ``net`` (loopback probes), ``proc`` (the process
toolkit), ``stopsignals`` (stopping once on any burst of SIGTERMs); ``manifests`` (the lab's Istio YAML),
``router`` (the Router interface), ``envoyroutes`` (Envoy routes read back); ``boutique`` (the system under test);
``mesh`` (a real Envoy on 127.0.0.1) and ``cluster`` (kubectl/istioctl), side by side; ``rollout`` (the
progressive rollout, over either through the Router); ``demo``; ``cli`` (the ``canary-setup`` entry point).
"""
