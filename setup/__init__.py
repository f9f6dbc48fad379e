"""canary-setup: provision the lab's canary topology on a cluster (kubectl/istioctl) or locally on real Envoy."""
