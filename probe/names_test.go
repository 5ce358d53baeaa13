package probe

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var validEventName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func TestAssignEventNames(t *testing.T) {
	long := strings.Repeat("a", 70)
	withOffset := &Spec{SymbolOffset: 0x10}
	for _, tc := range []struct {
		name    string
		targets []Target
		want    []string
	}{
		{"symbol", []Target{{Symbol: "malloc"}}, []string{"malloc"}},
		{"return", []Target{{Symbol: "malloc", Return: true}}, []string{"malloc__return"}},
		{"entry and return", []Target{{Symbol: "malloc"}, {Symbol: "malloc", Return: true}}, []string{"malloc", "malloc__return"}},
		{"symbol offset", []Target{{Symbol: "malloc", Spec: withOffset}}, []string{"malloc_0x10"}},
		{"raw offset", []Target{{Offset: 0x1139}}, []string{"off_0x1139"}},
		{"raw offset return", []Target{{Offset: 0x1139, Return: true}}, []string{"off_0x1139__return"}},
		{"duplicates", []Target{{Symbol: "f"}, {Symbol: "f"}, {Symbol: "f"}}, []string{"f", "f_2", "f_3"}},
		{"duplicate returns", []Target{{Symbol: "f", Return: true}, {Symbol: "f", Return: true}}, []string{"f__return", "f_2__return"}},
		{"sanitized", []Target{{Symbol: "main.(*T).Run"}, {Symbol: "foo@GLIBC_2.2.5"}, {Symbol: "a-b$c"}},
			[]string{"main___T__Run", "foo_GLIBC_2_2_5", "a_b_c"}},
		{"sanitized collision", []Target{{Symbol: "a.b"}, {Symbol: "a_b"}}, []string{"a_b", "a_b_2"}},
		{"leading digit", []Target{{Symbol: "9lives"}}, []string{"_9lives"}},
		{"utf-8", []Target{{Symbol: "café"}}, []string{"caf__"}},
		{"too long", []Target{{Symbol: long}}, []string{long[:63]}},
		{"too long return", []Target{{Symbol: long, Return: true}}, []string{long[:55] + "__return"}},
		{"too long duplicates", []Target{{Symbol: long}, {Symbol: long}}, []string{long[:63], long[:61] + "_2"}},
		{"overwrites", []Target{{Symbol: "x", Event: "old"}}, []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			AssignEventNames(tc.targets)
			var got []string
			for _, tg := range tc.targets {
				got = append(got, tg.Event)
				if !validEventName.MatchString(tg.Event) {
					t.Errorf("invalid event name %q", tg.Event)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAssignEventNamesLibc names every function of libc: all unique and
// valid.
func TestAssignEventNamesLibc(t *testing.T) {
	targets, err := resolveWord(t, "libc.so.6:*", ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	AssignEventNames(targets)
	seen := map[string]bool{}
	for _, tg := range targets {
		if seen[tg.Event] || !validEventName.MatchString(tg.Event) {
			t.Fatalf("event name %q for %s: duplicate or invalid", tg.Event, tg.Symbol)
		}
		seen[tg.Event] = true
	}
}

// BenchmarkAssignEventNamesDuplicates: 10,000 identical words must cost
// about 10× 1,000 (linear), not 100× (quadratic).
func BenchmarkAssignEventNamesDuplicates(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			targets := make([]Target, n)
			for i := 0; i < b.N; i++ {
				for j := range targets {
					targets[j] = Target{Symbol: "malloc"}
				}
				AssignEventNames(targets)
			}
		})
	}
}
