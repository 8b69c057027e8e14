package main

import "github.com/spf13/cobra"

func (s *session) exportCommand() *cobra.Command { return &cobra.Command{Use: "export"} }
func (s *session) importCommand() *cobra.Command { return &cobra.Command{Use: "import"} }
