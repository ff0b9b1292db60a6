// Package mdblocks reads the fenced code blocks of a Markdown page, so that
// tests can run or compile what the docs show (the tutorial's shell
// commands, the JavaScript and Go examples) and the docs cannot drift from
// the code.
package mdblocks

import (
	"bufio"
	"strings"
)

// Block is one fenced code block.
type Block struct {
	// Line is the line number of the opening fence (1-based).
	Line int
	// Code is the block's text, every line ending in a newline.
	Code string
}

// Find returns the blocks of md fenced as ```lang (any of langs), in order.
func Find(md string, langs ...string) []Block {
	var out []Block
	var cur *Block
	sc := bufio.NewScanner(strings.NewReader(md))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		fence := strings.TrimSpace(l)
		switch {
		case cur == nil && strings.HasPrefix(fence, "```") && isOneOf(strings.TrimPrefix(fence, "```"), langs):
			cur = &Block{Line: n}
		case cur != nil && fence == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.Code += l + "\n"
		}
	}
	return out
}

func isOneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}
