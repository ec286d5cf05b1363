// Package deploy holds no code: its tests check the deployment examples
// (deploy/ansible, docs/cloud-init.md) as far as they can be checked
// without a host. test/e2e/ansible_test.go runs the Ansible role.
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tlsdock/tlsdock/certstore"
	"github.com/tlsdock/tlsdock/proxy"
)

// cloudConfig is the part of cloud-init's schema that the examples use;
// any other key is an error here (cloud-init itself knows many more).
type cloudConfig struct {
	PackageUpdate bool        `yaml:"package_update"`
	Packages      []string    `yaml:"packages"`
	WriteFiles    []writeFile `yaml:"write_files"`
	Runcmd        [][]string  `yaml:"runcmd"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

// cloudConfigs returns the YAML blocks of docs/cloud-init.md.
func cloudConfigs(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/cloud-init.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) != 2 {
		t.Fatalf("docs/cloud-init.md has %d yaml blocks, want the 2 examples", len(blocks))
	}
	return blocks
}

func parseCloudConfig(t *testing.T, block string) cloudConfig {
	t.Helper()
	if !strings.HasPrefix(block, "#cloud-config\n") {
		t.Fatalf("example does not start with #cloud-config:\n%s", block)
	}
	dec := yaml.NewDecoder(strings.NewReader(block))
	dec.KnownFields(true)
	var c cloudConfig
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("example:\n%s\nis not the cloud-config the test knows: %v", block, err)
	}
	return c
}

// TestCloudInitExamples parses both #cloud-config examples and checks what
// a host would do with them: docker.io is installed, the files are root's
// with string modes (cloud-init reads a bare 0400 as the number 400), keys
// are 0400, the package is installed with dpkg, and a policy loads as
// tlsdock's proxy loads it.
func TestCloudInitExamples(t *testing.T) {
	for i, block := range cloudConfigs(t) {
		c := parseCloudConfig(t, block)
		if !c.PackageUpdate || !slices.Contains(c.Packages, "docker.io") {
			t.Errorf("example %d: package_update %v, packages %v; want docker.io from fresh lists", i+1, c.PackageUpdate, c.Packages)
		}
		for _, f := range c.WriteFiles {
			if f.Owner != "root:root" || !regexp.MustCompile(`^0[0-7]{3}$`).MatchString(f.Permissions) || !filepath.IsAbs(f.Path) {
				t.Errorf("example %d: %s: owner %q, permissions %q; want root:root and a quoted octal mode", i+1, f.Path, f.Owner, f.Permissions)
			}
			if strings.Contains(f.Content, "PRIVATE KEY") && f.Permissions != "0400" {
				t.Errorf("example %d: key %s has mode %s, want 0400", i+1, f.Path, f.Permissions)
			}
			if strings.HasSuffix(f.Path, "policy.json") {
				if _, err := proxy.ParsePolicy([]byte(f.Content), f.Path); err != nil {
					t.Errorf("example %d: policy %s: %v", i+1, f.Path, err)
				}
			}
		}
		if !slices.ContainsFunc(c.Runcmd, func(cmd []string) bool { return slices.Equal(cmd, []string{"dpkg", "-i", "/var/cache/tlsdock.deb"}) }) {
			t.Errorf("example %d: runcmd %v does not install the package", i+1, c.Runcmd)
		}
	}
}

// TestCloudInitCertsExample: the first example relies on the postinstall
// provisioning a complete set in /etc/tlsdock/certs, so it must write
// exactly the default file names there.
func TestCloudInitCertsExample(t *testing.T) {
	c := parseCloudConfig(t, cloudConfigs(t)[0])
	var got []string
	for _, f := range c.WriteFiles {
		got = append(got, f.Path)
	}
	want := []string{"/etc/tlsdock/certs/" + certstore.CAFile, "/etc/tlsdock/certs/" + certstore.CertFile, "/etc/tlsdock/certs/" + certstore.KeyFile}
	if !slices.Equal(got, want) {
		t.Errorf("first example writes %v, want %v (what the postinstall provisions from)", got, want)
	}
}

// TestAnsibleFiles parses every YAML file of deploy/ansible and loads the
// example policy as tlsdock's proxy does.
func TestAnsibleFiles(t *testing.T) {
	n := 0
	err := filepath.WalkDir("ansible", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var v any
		if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Errorf("found %d YAML files in deploy/ansible, want the playbook and the role's", n)
	}
	if _, err := proxy.LoadPolicy("ansible/files/policy.json"); err != nil {
		t.Errorf("deploy/ansible/files/policy.json: %v", err)
	}
}
