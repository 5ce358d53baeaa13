package output

import (
	"os"

	"github.com/google/pprof/profile"

	"github.com/uprobectl/uprobectl/session"
)

// writePprof writes the counted stacks as a gzipped pprof profile: one
// sample per row, valued in hits, its locations the stack innermost first,
// labeled with the probe, the command and the pid (and the --by values).
// `go tool pprof -top FILE` shows the hits per function.
func writePprof(path string, rows []*countRow, counts map[countKey]uint64) error {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "hits", Unit: "count"}},
		PeriodType: &profile.ValueType{Type: "hits", Unit: "count"},
		Period:     1,
	}
	mappings := map[string]*profile.Mapping{}
	functions := map[[2]string]*profile.Function{}
	locations := map[[2]any]*profile.Location{}
	mappingOf := func(binary string) *profile.Mapping {
		if binary == "" {
			return nil
		}
		m := mappings[binary]
		if m == nil {
			m = &profile.Mapping{ID: uint64(len(p.Mapping) + 1), File: binary, HasFunctions: true}
			mappings[binary] = m
			p.Mapping = append(p.Mapping, m)
		}
		return m
	}
	locationOf := func(f session.Frame) *profile.Location {
		key := [2]any{f.Binary, f.Addr}
		if loc := locations[key]; loc != nil {
			return loc
		}
		name := frameFunction(f)
		fn := functions[[2]string{name, f.Binary}]
		if fn == nil {
			fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name, Filename: f.Binary}
			functions[[2]string{name, f.Binary}] = fn
			p.Function = append(p.Function, fn)
		}
		loc := &profile.Location{ID: uint64(len(p.Location) + 1), Mapping: mappingOf(f.Binary), Address: f.Addr,
			Line: []profile.Line{{Function: fn}}}
		locations[key] = loc
		p.Location = append(p.Location, loc)
		return loc
	}
	for _, r := range rows {
		s := &profile.Sample{
			Value:    []int64{int64(counts[r.key])},
			Label:    map[string][]string{"probe": {r.key.probe.Name()}, "comm": {r.comm}},
			NumLabel: map[string][]int64{"pid": {int64(r.key.pid)}},
		}
		for _, v := range r.by {
			s.Label[v.name] = []string{v.text}
		}
		for _, f := range r.frames {
			s.Location = append(s.Location, locationOf(f))
		}
		p.Sample = append(p.Sample, s)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := p.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
