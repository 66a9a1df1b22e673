package deploycheck

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// k8sObjects builds deploy/k8s/base with kustomize (krusty, the library
// behind `kubectl apply -k`) and decodes every resource strictly into its
// k8s.io/api type: an unknown or misspelt field fails.
type k8sObjects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pdbs        map[string]*policyv1.PodDisruptionBudget
	policies    map[string]*networkingv1.NetworkPolicy
	namespaces  map[string]*corev1.Namespace
}

func buildK8s(t *testing.T) k8sObjects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root(t), "deploy/k8s/base"))
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s/base: %v", err)
	}
	o := k8sObjects{map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}, map[string]*corev1.ConfigMap{},
		map[string]*policyv1.PodDisruptionBudget{}, map[string]*networkingv1.NetworkPolicy{}, map[string]*corev1.Namespace{}}
	for _, res := range rm.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		gvk := res.GetGvk()
		name := res.GetName()
		var dst any
		switch gvk.Kind {
		case "Deployment":
			d := &appsv1.Deployment{}
			o.deployments[name], dst = d, d
		case "Service":
			s := &corev1.Service{}
			o.services[name], dst = s, s
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			o.configMaps[name], dst = c, c
		case "PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			o.pdbs[name], dst = p, p
		case "NetworkPolicy":
			p := &networkingv1.NetworkPolicy{}
			o.policies[name], dst = p, p
		case "Namespace":
			n := &corev1.Namespace{}
			o.namespaces[name], dst = n, n
		default:
			t.Errorf("unexpected kind %s (%s): add it to the strict decoder", gvk.Kind, name)
			continue
		}
		if err := yaml.UnmarshalStrict(b, dst); err != nil {
			t.Errorf("%s %s does not decode strictly: %v", gvk.Kind, name, err)
		}
		if gvk.Kind != "Namespace" && res.GetNamespace() != "strata" {
			t.Errorf("%s %s is in namespace %q, want strata", gvk.Kind, name, res.GetNamespace())
		}
	}
	return o
}

func TestKustomizeBuildsStrict(t *testing.T) {
	o := buildK8s(t)
	if o.namespaces["strata"] == nil {
		t.Error("no strata namespace")
	}
	for _, store := range []string{"postgres", "redis", "cassandra"} {
		if s := o.services[store]; s == nil || s.Spec.Type != corev1.ServiceTypeExternalName || s.Spec.ExternalName == "" {
			t.Errorf("%s: want an ExternalName Service (the stores are managed services outside the cluster)", store)
		}
	}
	if o.configMaps["strata-stores"] == nil {
		t.Error("no strata-stores ConfigMap")
	}
}

func TestK8sDeployments(t *testing.T) {
	o := buildK8s(t)
	for _, svc := range Services {
		t.Run(svc.Name, func(t *testing.T) {
			d := o.deployments[svc.Name]
			if d == nil {
				t.Fatalf("no Deployment %s", svc.Name)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Errorf("replicas %v, want at least 2", d.Spec.Replicas)
			}
			pod := d.Spec.Template.Spec
			if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
				sc.SeccompProfile == nil {
				t.Errorf("pod securityContext must run as non-root with a seccomp profile")
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Errorf("the service needs no Kubernetes API token")
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("want one container")
			}
			c := pod.Containers[0]
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("container securityContext must be read-only, no escalation, all capabilities dropped")
			}
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[res]; !ok {
					t.Errorf("no %s request", res)
				}
				if _, ok := c.Resources.Limits[res]; !ok {
					t.Errorf("no %s limit", res)
				}
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports["public"] != int32(svc.Port) || ports["internal"] != int32(svc.Port+1000) {
				t.Errorf("container ports %v, want public %d internal %d", ports, svc.Port, svc.Port+1000)
			}
			for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "public" {
					t.Errorf("%s probe: want HTTPS GET %s on the public port", name, want)
				}
			}
			// Certificates: the Secret's files at the paths the settings name.
			cm := o.configMaps[svc.Name+"-env"]
			if cm == nil {
				t.Fatalf("no ConfigMap %s-env", svc.Name)
			}
			mounted := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == CertsMount && m.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("certificates not mounted read-only at %s", CertsMount)
			}
			for k, want := range map[string]string{"STRATA_TLS_CA": "ca.pem", "STRATA_TLS_CERT": svc.Name + ".pem", "STRATA_TLS_KEY": svc.Name + "-key.pem",
				"STRATA_PUBLIC_ADDR": fmt.Sprintf("0.0.0.0:%d", svc.Port), "STRATA_INTERNAL_ADDR": fmt.Sprintf("0.0.0.0:%d", svc.Port+1000)} {
				if !strings.HasPrefix(want, "0.0.0.0") {
					want = CertsMount + "/" + want
				}
				if cm.Data[k] != want {
					t.Errorf("%s = %q, want %q", k, cm.Data[k], want)
				}
			}
			if cm.Data["STRATA_ENV"] != "production" {
				t.Errorf("STRATA_ENV = %q: Kubernetes runs production (no dev keys, no demo users, no fault toggles)", cm.Data["STRATA_ENV"])
			}
			// Spans cross the network to the collector: TLS, verified.
			if ep := cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep != "" &&
				(!strings.HasPrefix(ep, "https://") || cm.Data["OTEL_EXPORTER_OTLP_INSECURE"] == "true" || cm.Data["OTEL_EXPORTER_OTLP_CERTIFICATE"] == "") {
				t.Errorf("OTLP to %q (insecure %q, CA %q): production exports over verified TLS", ep,
					cm.Data["OTEL_EXPORTER_OTLP_INSECURE"], cm.Data["OTEL_EXPORTER_OTLP_CERTIFICATE"])
			}
			// Key material (auth's KEK, the ledger's keyset) is mounted 0400:
			// the services refuse a key file that others can read.
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret == nil || v.Secret.SecretName == svc.Name+"-tls" {
					continue
				}
				if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
					t.Errorf("Secret %s mounted with mode %v; key material needs 0400", v.Secret.SecretName, v.Secret.DefaultMode)
				}
			}
			// Service and PDB.
			s := o.services[svc.Name]
			if s == nil || len(s.Spec.Ports) != 2 {
				t.Fatalf("Service %s must expose public and internal ports", svc.Name)
			}
			for _, p := range s.Spec.Ports {
				if (p.Name == "public" && p.Port != int32(svc.Port)) || (p.Name == "internal" && p.Port != int32(svc.Port+1000)) {
					t.Errorf("Service port %s = %d", p.Name, p.Port)
				}
			}
			if pdb := o.pdbs[svc.Name]; pdb == nil || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
				t.Errorf("want a PodDisruptionBudget with minAvailable >= 1")
			}
		})
	}
}

// TestK8sEnvReadByService: every variable the manifests set (ConfigMap and
// env) is one the service reads; a misspelt one would be silently ignored.
// Unset variables take the service's defaults, so the converse is not
// required here (compose, the reference configuration, sets them all).
func TestK8sEnvReadByService(t *testing.T) {
	o := buildK8s(t)
	for _, svc := range Services {
		t.Run(svc.Name, func(t *testing.T) {
			d := o.deployments[svc.Name]
			if d == nil {
				t.Fatalf("no Deployment %s", svc.Name)
			}
			var set []string
			c := d.Spec.Template.Spec.Containers[0]
			for _, ef := range c.EnvFrom {
				cm := o.configMaps[ef.ConfigMapRef.Name]
				if cm == nil {
					t.Fatalf("envFrom names missing ConfigMap %s", ef.ConfigMapRef.Name)
				}
				set = append(set, keys(cm.Data)...)
			}
			for _, e := range c.Env {
				set = append(set, e.Name)
				if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil {
					if cm := o.configMaps[r.ConfigMapKeyRef.Name]; cm == nil || cm.Data[r.ConfigMapKeyRef.Key] == "" {
						t.Errorf("%s refers to missing ConfigMap key %s/%s", e.Name, r.ConfigMapKeyRef.Name, r.ConfigMapKeyRef.Key)
					}
				}
			}
			if m := diff(set, configVars(t, svc.Name)); len(m) > 0 {
				t.Errorf("manifests set %v for %s, which it does not read", m, svc.Name)
			}
		})
	}
}

func TestK8sNetworkPolicies(t *testing.T) {
	o := buildK8s(t)
	deny := o.policies["default-deny"]
	if deny == nil || len(deny.Spec.PodSelector.MatchLabels) != 0 || len(deny.Spec.Ingress) != 0 || len(deny.Spec.Egress) != 0 ||
		!slices.Contains(deny.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(deny.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Error("want a default-deny policy for every pod, ingress and egress")
	}
	// Each Deployment's pods carry the label the allow rules select on.
	for _, svc := range Services {
		if d := o.deployments[svc.Name]; d == nil || d.Spec.Template.Labels["app.kubernetes.io/part-of"] != "strata" {
			t.Errorf("%s pods lack app.kubernetes.io/part-of=strata", svc.Name)
		}
	}
	port := func(p networkingv1.NetworkPolicyPort) string {
		if p.Port == nil {
			return ""
		}
		return p.Port.String()
	}
	pub := o.policies["public-from-ingress"]
	if pub == nil || len(pub.Spec.Ingress) != 1 || len(pub.Spec.Ingress[0].Ports) != 1 || port(pub.Spec.Ingress[0].Ports[0]) != "public" {
		t.Error("public-from-ingress must open only the public port")
	}
	in := o.policies["internal-from-workloads"]
	if in == nil || len(in.Spec.Ingress) != 1 || len(in.Spec.Ingress[0].Ports) != 1 || port(in.Spec.Ingress[0].Ports[0]) != "internal" {
		t.Error("internal-from-workloads must open only the internal port")
	}
	eg := o.policies["workload-egress"]
	var egress []string
	if eg != nil {
		for _, r := range eg.Spec.Egress {
			for _, p := range r.Ports {
				egress = append(egress, port(p))
			}
		}
	}
	for _, want := range []string{"53", "5432", "6379", "9042", "4317"} {
		if !slices.Contains(egress, want) {
			t.Errorf("workload-egress does not allow port %s", want)
		}
	}
	for _, svc := range Services {
		if !slices.Contains(egress, strconv.Itoa(svc.Port+1000)) {
			t.Errorf("workload-egress does not allow %s's internal port", svc.Name)
		}
	}
}
