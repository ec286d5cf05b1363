//go:build tlsdock_gendocs

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// addGenDocs adds the hidden gen-docs command, which the package build
// (make package) runs to generate shell completions and man pages from the
// command tree. It is built only with -tags tlsdock_gendocs: the man page
// writer and its Markdown parser would add about 0.7 MB to the shipped
// binary, all of it resident in every idle `tlsdock run` (docs_off.go).
func addGenDocs(root *cobra.Command, env *Env) {
	root.AddCommand(newGenDocsCmd(env))
}

func newGenDocsCmd(env *Env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "gen-docs --dir DIR",
		Short:  "Write shell completions and man pages (for packaging)",
		Hidden: true,
		Args:   cobra.NoArgs,
		Long: `Gen-docs writes, under DIR:
  completions/tlsdock.bash  bash completion
  completions/_tlsdock      zsh completion
  completions/tlsdock.fish  fish completion
  man/*.1                   one man page per command (uncompressed)
Man pages take their date from SOURCE_DATE_EPOCH when it is set.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true
			comp, man := filepath.Join(dir, "completions"), filepath.Join(dir, "man")
			for _, d := range []string{comp, man} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			gens := []struct {
				name string
				gen  func(path string) error
			}{
				{"tlsdock.bash", func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
				{"_tlsdock", root.GenZshCompletionFile},
				{"tlsdock.fish", func(p string) error { return root.GenFishCompletionFile(p, true) }},
			}
			for _, g := range gens {
				if err := g.gen(filepath.Join(comp, g.name)); err != nil {
					return fmt.Errorf("writing %s: %w", g.name, err)
				}
			}
			header := &doc.GenManHeader{
				Title:   "TLSDOCK",
				Section: "1",
				Source:  "tlsdock " + root.Version,
				Manual:  "tlsdock manual",
			}
			if err := doc.GenManTree(root, header, man); err != nil {
				return fmt.Errorf("writing man pages to %s: %w", man, err)
			}
			fmt.Fprintf(env.Stdout, "Wrote completions to %s and man pages to %s\n", comp, man)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "output directory (required)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}
