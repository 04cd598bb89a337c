"""Argo Rollouts and Flagger manifests in and out: YAML reading (safe loader, line numbers),
the condition language, the translation into the lab's ``[rollout]`` table, and the
exporters that write a scenario's policy back as a manifest."""
