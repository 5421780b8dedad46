package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
)

// The deployment files of a three-replica node must load as node configs and agree with each
// other: the same raft.servers on every replica, each replica advertising the address the others
// dial, and (on Kubernetes) raft.servers naming the StatefulSet's pods by their DNS names under
// the headless Service.

// checkGroupConfigs checks the configs of the replicas of one group, by replica id.
func checkGroupConfigs(t *testing.T, cfgs map[string]*config.Config) {
	t.Helper()
	if len(cfgs) != 3 {
		t.Fatalf("%d replica configs, want 3", len(cfgs))
	}
	var first []config.RaftServer
	for id, c := range cfgs {
		if c.ReplicaID != id {
			t.Errorf("%s: replica_id %q", id, c.ReplicaID)
		}
		if c.Identity.Source != config.SourceWorkloadAPI {
			t.Errorf("%s: identity.source %q, want workloadapi (SPIRE)", id, c.Identity.Source)
		}
		if c.Raft.Listen == "" || c.Listen == "" {
			t.Errorf("%s: listen %q, raft.listen %q: both are needed", id, c.Listen, c.Raft.Listen)
		}
		if first == nil {
			first = c.Raft.Servers
		} else if !reflect.DeepEqual(first, c.Raft.Servers) {
			t.Errorf("%s: raft.servers differs from another replica's:\n%v\n%v", id, c.Raft.Servers, first)
		}
		found := false
		for _, s := range c.Raft.Servers {
			if s.ID != id {
				continue
			}
			found = true
			if s.Address != c.Raft.Advertise {
				t.Errorf("%s: raft.advertise %q, but raft.servers gives its address as %q", id, c.Raft.Advertise, s.Address)
			}
			if port(t, s.API) != port(t, c.Listen) || port(t, s.Address) != port(t, c.Raft.Listen) {
				t.Errorf("%s: raft.servers entry %+v does not match listen %q and raft.listen %q", id, s, c.Listen, c.Raft.Listen)
			}
		}
		if !found {
			t.Errorf("%s is not in its own raft.servers", id)
		}
		// A follower links officers to the leader's web interface by raft.servers[].ui.
		if c.UI.Listen != "" {
			for _, s := range c.Raft.Servers {
				if s.ID == id && s.UI != c.UI.PublicURL {
					t.Errorf("%s: raft.servers gives its web interface as %q, but ui.public_url is %q", id, s.UI, c.UI.PublicURL)
				}
			}
		}
	}
	if len(first) != 3 {
		t.Errorf("raft.servers lists %d replicas, want 3", len(first))
	}
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return p
}

func TestSystemdReplicaConfigs(t *testing.T) {
	cfgs := map[string]*config.Config{}
	for _, id := range []string{"r1", "r2", "r3"} {
		c, err := config.Load(filepath.Join("..", "deploy", "systemd", id+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfgs[id] = c
	}
	checkGroupConfigs(t, cfgs)
	unit, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", "knooppunt@.service"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "--data-dir /var/lib/knooppunt/%i --config /etc/knooppunt/%i.yaml"; !bytes.Contains(unit, []byte(want)) {
		t.Errorf("knooppunt@.service does not run %q", want)
	}
}

// manifests reads the documents of a Kubernetes manifest file.
func manifests(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs = append(docs, d)
	}
}

// field walks a decoded manifest by keys and list indexes.
func field(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: not a mapping", path)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: not a list of %d", path, k+1)
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesStatefulSet(t *testing.T) {
	sts := manifests(t, "statefulset.yaml")[0]
	name := field(t, sts, "metadata", "name").(string)
	ns := field(t, sts, "metadata", "namespace").(string)
	svcName := field(t, sts, "spec", "serviceName").(string)
	if r := fmt.Sprint(field(t, sts, "spec", "replicas")); r != "3" {
		t.Errorf("replicas: %s, want 3", r)
	}
	if p := field(t, sts, "spec", "podManagementPolicy"); p != "Parallel" {
		t.Errorf("podManagementPolicy %v: a replica is ready only once a majority is up, so the pods must start together", p)
	}
	container := field(t, sts, "spec", "template", "spec", "containers", 0)
	args := fmt.Sprint(field(t, container, "args"))
	if !strings.Contains(args, "--config=/etc/knooppunt/$(POD_NAME).yaml") {
		t.Errorf("args %s do not pick the pod's own config", args)
	}
	mounts := map[string]string{}
	for _, m := range field(t, container, "volumeMounts").([]any) {
		mounts[field(t, m, "name").(string)] = field(t, m, "mountPath").(string)
	}
	// The probes run `knooppunt health` on the pod's socket: readiness on quorum, startup and
	// liveness never on quorum, so that a survivor of a lost majority keeps running
	// (cmd/knooppunt's TestHealthCommand runs these commands).
	sock := "--node=unix://" + filepath.Join(mounts["data"], node.SocketName)
	for probe, live := range map[string]bool{"startupProbe": true, "readinessProbe": false, "livenessProbe": true} {
		cmd := fmt.Sprint(field(t, container, probe, "exec", "command"))
		if !strings.HasPrefix(cmd, "[knooppunt health ") || !strings.Contains(cmd, " "+sock+" ") || strings.Contains(cmd, " --live ") != live {
			t.Errorf("%s runs %s: want knooppunt health %s, with --live %v", probe, cmd, sock, live)
		}
		if s := fmt.Sprint(field(t, container, probe, "timeoutSeconds")); s != "5" || !strings.Contains(cmd, " --timeout=3s") {
			t.Errorf("%s: timeoutSeconds %s and %s: the kubelet must wait longer than the command does", probe, s, cmd)
		}
	}

	services := map[string]map[string]any{}
	for _, d := range manifests(t, "service.yaml") {
		services[field(t, d, "metadata", "name").(string)] = d
	}
	headless := services[svcName]
	if headless == nil {
		t.Fatalf("service.yaml has no Service %q, the StatefulSet's serviceName", svcName)
	}
	if field(t, headless, "spec", "clusterIP") != "None" || field(t, headless, "spec", "publishNotReadyAddresses") != true {
		t.Errorf("Service %s must be headless and publish not-ready addresses: the replicas resolve each other before any is ready", svcName)
	}

	cm := manifests(t, "configmap.yaml")[0]
	dir := t.TempDir()
	cfgs := map[string]*config.Config{}
	for key, v := range field(t, cm, "data").(map[string]any) {
		path := filepath.Join(dir, key)
		if err := os.WriteFile(path, []byte(v.(string)), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		cfgs[strings.TrimSuffix(key, ".yaml")] = c
		if sock := strings.TrimPrefix(c.Identity.WorkloadAPI, "unix://"); filepath.Dir(sock) != mounts["spiffe-workload-api"] {
			t.Errorf("%s: workload_api %s is not in the mounted directory %s", key, c.Identity.WorkloadAPI, mounts["spiffe-workload-api"])
		}
	}
	checkGroupConfigs(t, cfgs)
	ports := map[string]string{}
	for _, p := range field(t, container, "ports").([]any) {
		ports[field(t, p, "name").(string)] = fmt.Sprint(field(t, p, "containerPort"))
	}
	publicURLs := map[string]bool{}
	for i := range 3 {
		id := fmt.Sprintf("%s-%d", name, i)
		c, ok := cfgs[id]
		if !ok {
			t.Fatalf("no config for pod %s", id)
		}
		want := fmt.Sprintf("%s.%s.%s.svc.cluster.local", id, svcName, ns)
		if host, _, _ := net.SplitHostPort(c.Raft.Advertise); host != want {
			t.Errorf("%s advertises %s, want its pod DNS name %s", id, c.Raft.Advertise, want)
		}
		// The web interface: on the container's ui port, its files in the mounted Secret, an
		// address of its own, and a Service that reaches this pod alone (a session lives in
		// the replica's memory).
		if port(t, c.UI.Listen) != ports["ui"] {
			t.Errorf("%s: ui.listen %q is not on the container's ui port %s", id, c.UI.Listen, ports["ui"])
		}
		for _, f := range []string{c.UI.TLS.CertFile, c.UI.TLS.KeyFile, c.UI.OIDC.ClientSecretFile} {
			if filepath.Dir(f) != mounts["ui"] {
				t.Errorf("%s: %s is not in the mounted Secret %s", id, f, mounts["ui"])
			}
		}
		if publicURLs[c.UI.PublicURL] {
			t.Errorf("%s: ui.public_url %s is another replica's too", id, c.UI.PublicURL)
		}
		publicURLs[c.UI.PublicURL] = true
		svc := services[fmt.Sprintf("%s-ui-%d", name, i)]
		if svc == nil {
			t.Fatalf("service.yaml has no Service %s-ui-%d for %s's web interface", name, i, id)
		}
		if pod := field(t, svc, "spec", "selector", "statefulset.kubernetes.io/pod-name"); pod != id || field(t, svc, "spec", "ports", 0, "targetPort") != "ui" {
			t.Errorf("Service %s-ui-%d selects pod %v, port %v: want %s alone, on its ui port", name, i, pod, field(t, svc, "spec", "ports", 0, "targetPort"), id)
		}
	}
	volumes := map[string]any{}
	for _, v := range field(t, sts, "spec", "template", "spec", "volumes").([]any) {
		volumes[field(t, v, "name").(string)] = v
	}
	if volumes["ui"] == nil || field(t, volumes["ui"], "secret", "secretName") == nil {
		t.Errorf("the ui volume is %v, want a Secret", volumes["ui"])
	}
}
