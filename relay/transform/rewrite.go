package transform

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// This file adjusts the parse tree after parsing, the way html/template adds
// its escapers, to give templates the rules described in the package
// documentation:
//
//   - every action that prints gets "| hookrelay_emit <action text>"
//     appended, so that null, objects and arrays are errors instead of
//     "<no value>" or map[...] in the body;
//   - a field path (.a.b, $x.a.b, (pipe).a.b) that may be missing, because
//     it is an argument of default/and/or/not, is piped into one of them, or
//     is the whole condition of if/with/range, becomes
//     (hookrelay_opt <receiver> "a" "b"), which yields nil where
//     missingkey=error would fail;
//   - every range body and every {{define}}d template starts with
//     {{if hookrelay_tick}}{{end}}, which stops a render that runs past its
//     time limit or whose context ended: text/template cannot be
//     interrupted, and only loops and template calls can run long.
//
// New nodes take the position of the node they replace, so error messages
// keep pointing at the right line.

// tolerant lists the functions whose field-path arguments may be missing.
var tolerant = map[string]bool{
	"default": true,
	"and":     true,
	"or":      true,
	"not":     true,
}

// rewrite applies the rules to every template defined in t.
func rewrite(t *template.Template) {
	for _, tt := range t.Templates() {
		if tt.Tree != nil && tt.Root != nil {
			rewriteNode(tt.Root)
			if tt.Name() != t.Name() {
				prependTick(tt.Root)
			}
		}
	}
}

// prependTick puts {{if hookrelay_tick}}{{end}} first in l. An if prints
// nothing and keeps no variable; hookrelay_tick returns struct{}, which is
// true, and the if's body is empty.
func prependTick(l *parse.ListNode) {
	pos := l.Position()
	if len(l.Nodes) > 0 {
		pos = l.Nodes[0].Position()
	}
	tick := &parse.IfNode{BranchNode: parse.BranchNode{
		NodeType: parse.NodeIf,
		Pos:      pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{{
			NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{identifier(tickFunc, pos)},
		}}},
		List: &parse.ListNode{NodeType: parse.NodeList, Pos: pos},
	}}
	l.Nodes = slices.Insert(l.Nodes, 0, parse.Node(tick))
}

func rewriteNode(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			rewriteNode(c)
		}
	case *parse.ActionNode:
		label := "{{" + n.Pipe.String() + "}}"
		rewritePipe(n.Pipe)
		if len(n.Pipe.Decl) == 0 && !printsText(n.Pipe) {
			pos := n.Pipe.Position()
			n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
				NodeType: parse.NodeCommand,
				Pos:      pos,
				Args:     []parse.Node{identifier(emitFunc, pos), stringNode(label, pos)},
			})
		}
	case *parse.IfNode:
		rewriteBranch(&n.BranchNode)
	case *parse.WithNode:
		rewriteBranch(&n.BranchNode)
	case *parse.RangeNode:
		rewriteBranch(&n.BranchNode)
		if n.List == nil {
			n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Pos}
		}
		prependTick(n.List)
	case *parse.TemplateNode:
		if n.Pipe != nil {
			rewritePipe(n.Pipe)
		}
	}
}

// textFuncs always return a string (or an int, for len and cmp, or a
// Number): an action that ends with one of them needs no emit check, which
// saves a reflective call. print, printf, println, html, js and urlquery
// are the bounded versions of limits.go.
var textFuncs = map[string]bool{
	"json": true, "upper": true, "lower": true, "date": true,
	"print": true, "printf": true, "println": true, "len": true,
	"html": true, "js": true, "urlquery": true,
	"add": true, "sub": true, "mul": true, "div": true, "round": true,
	"cmp": true, "min": true, "max": true,
}

func printsText(p *parse.PipeNode) bool {
	last := p.Cmds[len(p.Cmds)-1]
	id, ok := last.Args[0].(*parse.IdentifierNode)
	return ok && textFuncs[id.Ident]
}

func rewriteBranch(b *parse.BranchNode) {
	rewritePipe(b.Pipe)
	if len(b.Pipe.Cmds) == 1 && len(b.Pipe.Cmds[0].Args) == 1 {
		b.Pipe.Cmds[0].Args[0] = optionalPath(b.Pipe.Cmds[0].Args[0])
	}
	rewriteNode(b.List)
	if b.ElseList != nil {
		rewriteNode(b.ElseList)
	}
}

func rewritePipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for i, c := range p.Cmds {
		for _, a := range c.Args {
			switch a := a.(type) {
			case *parse.PipeNode:
				rewritePipe(a)
			case *parse.ChainNode:
				if sub, ok := a.Node.(*parse.PipeNode); ok {
					rewritePipe(sub)
				}
			}
		}
		id, ok := c.Args[0].(*parse.IdentifierNode)
		if !ok || !tolerant[id.Ident] {
			continue
		}
		for j := 1; j < len(c.Args); j++ {
			c.Args[j] = optionalPath(c.Args[j])
		}
		if i > 0 && len(p.Cmds[i-1].Args) == 1 {
			p.Cmds[i-1].Args[0] = optionalPath(p.Cmds[i-1].Args[0])
		}
	}
}

// optionalPath turns a field path into a call of hookrelay_opt; other nodes
// are returned as they are.
func optionalPath(n parse.Node) parse.Node {
	switch n := n.(type) {
	case *parse.FieldNode:
		return optCall(n.Pos, &parse.DotNode{NodeType: parse.NodeDot, Pos: n.Pos}, n.Ident)
	case *parse.VariableNode:
		if len(n.Ident) > 1 {
			recv := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: n.Pos, Ident: n.Ident[:1]}
			return optCall(n.Pos, recv, n.Ident[1:])
		}
	case *parse.ChainNode:
		return optCall(n.Pos, n.Node, n.Field)
	}
	return n
}

func optCall(pos parse.Pos, recv parse.Node, fields []string) *parse.PipeNode {
	args := make([]parse.Node, 0, 2+len(fields))
	args = append(args, identifier(optFunc, pos), recv)
	for _, f := range fields {
		args = append(args, stringNode(f, pos))
	}
	return &parse.PipeNode{
		NodeType: parse.NodePipe,
		Pos:      pos,
		Cmds:     []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: pos, Args: args}},
	}
}

func identifier(name string, pos parse.Pos) *parse.IdentifierNode {
	return parse.NewIdentifier(name).SetTree(nil).SetPos(pos)
}

func stringNode(s string, pos parse.Pos) *parse.StringNode {
	return &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(s), Text: s}
}

// checkRecursion refuses a template that calls itself, directly or through
// others: text/template only stops such a render at a depth of 100000 calls,
// after some 100 ms and 100 MB of stack, and a body template has no use for
// recursion.
func checkRecursion(t *template.Template) error {
	type call struct {
		name string
		node *parse.TemplateNode
	}
	calls := map[string][]call{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		var visit func(parse.Node)
		visit = func(n parse.Node) {
			switch n := n.(type) {
			case *parse.ListNode:
				if n != nil {
					for _, c := range n.Nodes {
						visit(c)
					}
				}
			case *parse.IfNode:
				visit(n.List)
				visit(n.ElseList)
			case *parse.WithNode:
				visit(n.List)
				visit(n.ElseList)
			case *parse.RangeNode:
				visit(n.List)
				visit(n.ElseList)
			case *parse.TemplateNode:
				calls[tt.Name()] = append(calls[tt.Name()], call{n.Name, n})
			}
		}
		visit(tt.Root)
	}
	// Depth-first search; a call back into the current path is a cycle.
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var cycle func(name string, path []string) error
	cycle = func(name string, path []string) error {
		state[name] = onPath
		path = append(path, name)
		for _, c := range calls[name] {
			switch state[c.name] {
			case onPath:
				line := 0
				if tt := t.Lookup(name); tt != nil {
					loc, _ := tt.ErrorContext(c.node)
					line, _ = splitLocation("template: "+loc+": ", t.Name())
				}
				chain := strings.Join(append(path[slices.Index(path, c.name):], c.name), `" -> "`)
				return &ParseError{Template: t.Name(), Line: line,
					Reason: fmt.Sprintf(`template calls itself ("%s"); recursion is not allowed`, chain)}
			case unseen:
				if err := cycle(c.name, path); err != nil {
					return err
				}
			}
		}
		state[name] = done
		return nil
	}
	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if state[name] == unseen {
			if err := cycle(name, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
