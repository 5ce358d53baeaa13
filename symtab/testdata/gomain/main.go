// A Go program for the symtab tests: its functions keep their plain names
// (main.work) in .symtab.
package main

import "fmt"

//go:noinline
func work(n int) int { return n*3 + 1 }

func main() { fmt.Println(work(2)) }
