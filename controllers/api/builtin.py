"""Kubernetes built-in resource types fluxpy reads or writes, defined once for every layer."""
from controllers.api.types import ResourceType

NAMESPACE = ResourceType("", "v1", "Namespace", "namespaces", namespaced=False)
SECRET = ResourceType("", "v1", "Secret", "secrets")
CONFIGMAP = ResourceType("", "v1", "ConfigMap", "configmaps")
SERVICE_ACCOUNT = ResourceType("", "v1", "ServiceAccount", "serviceaccounts")
EVENT = ResourceType("", "v1", "Event", "events")
EVENTS_V1 = ResourceType("events.k8s.io", "v1", "Event", "events")
POD = ResourceType("", "v1", "Pod", "pods")
DEPLOYMENT = ResourceType("apps", "v1", "Deployment", "deployments")
LEASE = ResourceType("coordination.k8s.io", "v1", "Lease", "leases")
CRD = ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
                   namespaced=False)
