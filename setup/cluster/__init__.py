"""canary-setup on a real cluster: the lab's nine steps through kubectl, istioctl, gcloud, kind and docker.

Modules: ``runner`` (argv-only command execution with timeouts; dry-run recording), ``kube`` (kubectl/istioctl
helpers: get/ensure/apply, idempotent by comparing with live state), ``options`` (the command line as data),
``resources`` (the cluster documents, rendered from setup/templates like the mesh ones), ``proxy`` (weights as the
VirtualService and as the proxies hold them), ``steps`` (the steps as data + functions), ``preflight``, ``lint``,
``loadtest`` (Locust inside the mesh), ``podrun`` (the in-pod wrapper that stops the sidecar), ``cli``.
"""
