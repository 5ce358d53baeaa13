package probe

// ResolvePath resolves a probe's PATH the way Resolve does: a name without
// '/' as the dynamic loader would find it, anything else to the real path
// of the file (under opts.Root), which must be a regular file.
func ResolvePath(p string, opts ResolveOptions) (string, error) {
	return resolvePath(p, opts)
}
