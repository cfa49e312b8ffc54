package causes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

func mustParse(t *testing.T, src string) *Cause {
	t.Helper()
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "causes")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b := mustParse(t, goodYAML), mustParse(t, goodJSON)
	if err := s.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(mustParse(t, goodYAML)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate accepted: %v", err)
	}
	if got, ok := s.Get("toy-json"); !ok || got != b {
		t.Fatal("Get failed")
	}
	if _, ok := s.Get("nope"); ok {
		t.Fatal("Get of a missing cause")
	}
	if l := s.List(); len(l) != 2 || l[0].Name() != "toy-json" || l[1].Name() != "toy-quadratic" {
		t.Fatalf("List: %v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "toy-quadratic.json")); err != nil {
		t.Fatal(err)
	}

	// A hand-written YAML file next to the stored ones.
	yamlDef := strings.Replace(goodYAML, "name: toy-quadratic", "name: hand-written", 1)
	if err := os.WriteFile(filepath.Join(dir, "hand.yaml"), []byte(yamlDef), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 3 {
		t.Fatalf("reloaded %d causes", len(l))
	}
	re, _ := s2.Get("toy-quadratic")
	if re.Baseline().Key() != a.Baseline().Key() || len(re.Space()) != len(a.Space()) || re.Describe() != a.Describe() {
		t.Fatalf("reloaded cause differs:\n%s\n%s", re.Describe(), a.Describe())
	}
	r := domains.NewRegistry()
	s2.RegisterAll(r)
	if d, ok := r.Get("hand-written"); !ok || d.Name() != "hand-written" {
		t.Fatal("RegisterAll")
	}
	if ok, err := s2.Remove("hand-written"); !ok || err != nil {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hand.yaml")); !os.IsNotExist(err) {
		t.Fatalf("file not removed: %v", err)
	}
	if ok, _ := s2.Remove("hand-written"); ok {
		t.Fatal("removed twice")
	}

	// Invalid and duplicate files are rejected with their names.
	bad := strings.Replace(goodYAML, "direction: minimize", "direction: sideways", 1)
	if err := os.WriteFile(filepath.Join(dir, "broken.yml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(dir)
	if err == nil || !strings.Contains(err.Error(), "broken.yml") || !strings.Contains(err.Error(), "metric.direction") {
		t.Fatalf("invalid file: %v", err)
	}
	os.Remove(filepath.Join(dir, "broken.yml"))
	if err := os.WriteFile(filepath.Join(dir, "copy.yaml"), []byte(goodYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "copy.yaml") && !strings.Contains(err.Error(), "toy-quadratic.json") {
		t.Fatalf("duplicate files: %v", err)
	}
}

func TestMemoryStore(t *testing.T) {
	s := NewStore()
	if err := s.Add(mustParse(t, goodJSON)); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(mustParse(t, goodJSON)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.Add(&Cause{}); err == nil {
		t.Fatal("invalid cause added")
	}
	if s.Dir() != "" || len(s.List()) != 1 {
		t.Fatal("memory store")
	}
}
