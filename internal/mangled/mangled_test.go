package mangled

import (
	"testing"

	"github.com/ianlancetaylor/demangle"
)

func TestDemangle(t *testing.T) {
	for _, c := range []struct {
		name, want string
		opts       []demangle.Option
	}{
		{"_ZN2ns5Class6methodEi", "ns::Class::method(int)", nil},
		{"_ZN2ns5Class6methodEi", "ns::Class::method", []demangle.Option{demangle.NoParams}},
		{"main.work", "", nil}, // not mangled
		{"malloc", "", nil},
		{"_Zgarbage", "", nil}, // does not demangle
	} {
		if got := Demangle(c.name, c.opts...); got != c.want {
			t.Errorf("Demangle(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}
