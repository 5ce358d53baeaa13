package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
	"github.com/uprobectl/uprobectl/tracefs"
)

func symbolsCommand() *cli.Command {
	return &cli.Command{
		Name:      "symbols",
		Usage:     "list the functions of a binary or library that can be probed, with their file offsets",
		ArgsUsage: "PATH [GLOB]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Aliases: []string{"j"}, Usage: "one JSON object per symbol"},
			&cli.BoolFlag{Name: "usdt", Usage: "list the USDT (SDT) markers instead: GLOB matches provider:name or name"},
			&cli.IntFlag{Name: "pid", Aliases: []string{"p"}, Usage: "resolve a library name through this process's maps"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usageError(fmt.Errorf("symbols: usage: uprobectl symbols PATH [GLOB]"))
			}
			file := c.Args().Get(0)
			glob := c.Args().Get(1)
			if glob != "" {
				if _, err := path.Match(glob, ""); err != nil {
					return usageError(fmt.Errorf("symbols: bad glob %q: %v", glob, err))
				}
			}
			resolved, err := probe.ResolvePath(file, probe.ResolveOptions{PID: c.Int("pid")})
			if err != nil {
				return badInput(err)
			}
			if c.Bool("usdt") {
				return listUSDT(resolved, glob, c.Bool("json"))
			}
			syms, err := probe.Symbols(resolved)
			if err != nil {
				return badInput(err)
			}
			goBinary, _ := probe.IsGoBinary(resolved) // built by Go: see probe/golang.go
			enc := json.NewEncoder(os.Stdout)
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			if !c.Bool("json") {
				fmt.Fprintf(tw, "OFFSET\tSIZE\tNAME\n")
			}
			n := 0
			for _, s := range syms {
				if glob != "" && !s.MatchesGlob(glob) {
					continue
				}
				n++
				if c.Bool("json") {
					rec := map[string]any{"binary": resolved, "symbol": s.Name, "offset": s.Offset, "size": s.Size, "ifunc": s.IFunc, "dynamic": s.Dynamic, "go": goBinary}
					if s.Demangled != "" {
						rec["demangled"] = s.Demangled
					}
					enc.Encode(rec)
					continue
				}
				name := s.Name
				if s.Demangled != "" {
					name = s.Demangled
				}
				fmt.Fprintf(tw, "0x%x\t%d\t%s\n", s.Offset, s.Size, name)
			}
			tw.Flush()
			if n == 0 {
				return badInput(fmt.Errorf("no function matches %q in %s", glob, resolved))
			}
			return nil
		},
	}
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the uprobe events that uprobectl runs defined, with their owner and whether it is alive",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Aliases: []string{"j"}, Usage: "JSON lines"}},
		Action: func(c *cli.Context) error {
			fs, err := tracefs.Open()
			if err != nil {
				return environment(err)
			}
			groups, err := fs.OwnedGroups()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			if !c.Bool("json") {
				fmt.Fprintf(tw, "GROUP\tOWNER PID\tOWNER\tEVENTS\n")
			}
			for _, g := range groups {
				state := ownerState(g)
				if c.Bool("json") {
					events := make([]string, len(g.Events))
					for i, e := range g.Events {
						events[i] = strings.TrimSpace(e.Line)
					}
					enc.Encode(map[string]any{"group": g.Group, "owner_pid": g.Owner.PID, "owner_start_time": g.Owner.StartTime, "owner_pidns": g.Owner.PIDNS, "owner": state, "events": events})
					continue
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", g.Group, g.Owner.PID, state, len(g.Events))
			}
			return tw.Flush()
		},
	}
}

func ownerState(g tracefs.OwnedGroup) string {
	switch {
	case !g.Known:
		return "unknown (cannot tell from here: kept)"
	case g.Alive:
		return "alive"
	}
	return "dead"
}

func cleanCommand() *cli.Command {
	return &cli.Command{
		Name:  "clean",
		Usage: "remove the uprobe events of uprobectl runs that died (never another tool's, never a live run's)",
		Action: func(c *cli.Context) error {
			fs, err := tracefs.Open()
			if err != nil {
				return environment(err)
			}
			removed, err := fs.Reap()
			for _, g := range removed {
				fmt.Printf("removed %s (%d events; owner pid %d dead)\n", g.Group, len(g.Events), g.Owner.PID)
			}
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				fmt.Fprintln(os.Stderr, "uprobectl: nothing to clean")
			}
			return nil
		},
	}
}

func badInput(err error) error    { return session.Classify(session.ErrBadInput, err) }
func environment(err error) error { return session.Classify(session.ErrEnvironment, err) }
