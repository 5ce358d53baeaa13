package procfs

import (
	"errors"
	"testing"
)

func TestParseNamespaceLink(t *testing.T) {
	tests := []struct {
		name, link, kind string
		want             uint64
		wantErr          bool
	}{
		{name: "pid", link: "pid:[4026531836]", kind: "pid", want: 4026531836},
		{name: "mnt", link: "mnt:[4026531832]", kind: "mnt", want: 4026531832},
		{name: "another kind", link: "net:[4026531840]", kind: "pid", wantErr: true},
		{name: "no brackets", link: "pid:4026531836", kind: "pid", wantErr: true},
		{name: "no closing bracket", link: "pid:[4026531836", kind: "pid", wantErr: true},
		{name: "not a number", link: "pid:[x]", kind: "pid", wantErr: true},
		{name: "empty", link: "", kind: "pid", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNamespaceLink(tt.link, tt.kind)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("parseNamespaceLink = %d, %v, want ErrMalformed", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseNamespaceLink = %d, %v, want %d", got, err, tt.want)
			}
		})
	}
}
