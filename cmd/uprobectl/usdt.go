package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/uprobectl/uprobectl/probe"
)

// listUSDT is `symbols --usdt`: the SDT markers of a file, with the file
// offsets the kernel is given and their argument specs as written.
func listUSDT(file, glob string, asJSON bool) error {
	markers, err := probe.USDTMarkers(file)
	if err != nil {
		return badInput(err)
	}
	enc := json.NewEncoder(os.Stdout)
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintf(tw, "OFFSET\tSEMAPHORE\tPROVIDER\tNAME\tARGS\n")
	}
	n := 0
	for _, m := range markers {
		if glob != "" && !m.MatchesGlob(glob) {
			continue
		}
		n++
		if asJSON {
			enc.Encode(map[string]any{"binary": file, "provider": m.Provider, "name": m.Name, "offset": m.Offset,
				"semaphore": m.SemaphoreOffset, "args": m.Args})
			continue
		}
		sema := "-"
		if m.Semaphore != 0 {
			sema = fmt.Sprintf("0x%x", m.SemaphoreOffset)
		}
		fmt.Fprintf(tw, "0x%x\t%s\t%s\t%s\t%s\n", m.Offset, sema, m.Provider, m.Name, m.Args)
	}
	tw.Flush()
	if n == 0 {
		if glob == "" {
			return badInput(fmt.Errorf("%s has no USDT markers (no .note.stapsdt)", file))
		}
		return badInput(fmt.Errorf("no USDT marker matches %q in %s", glob, file))
	}
	return nil
}
