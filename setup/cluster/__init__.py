"""canary-setup on a real cluster: the lab's nine steps through kubectl, istioctl, gcloud, kind and docker.

Modules, bottom up:
- ``runner`` (argv-only command execution with timeouts; dry-run recording), ``kube`` (kubectl/istioctl helpers:
  get/ensure/apply, idempotent by comparing with live state), ``ui`` (progress output);
- ``options`` (the command line as data), ``resources`` (the cluster documents, rendered from setup/templates
  like the mesh ones), ``live`` (readings of live objects), ``declared`` (weights as a VirtualService declares
  them), ``context`` (``Ctx``: what every step gets);
- ``router`` (ClusterRouter: kubectl apply, istioctl proxy-config routes -- setup.router's interface);
- one module per step: ``provider`` (1 cluster, kube context), ``istio_install`` (2; ``promaddon`` its
  Prometheus addon option), ``app`` (3), ``expose`` (4), ``canary`` (5; ``images`` builds the image),
  ``weights`` (6), ``status`` (7), ``loadtest`` (8; ``podrun`` is its in-pod wrapper), ``teardown`` (9);
- ``steps`` (the steps as data, run in order), ``preflight`` (binaries), ``lint`` (offline checks), ``cli``.
"""
