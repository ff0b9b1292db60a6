package mdblocks

import "testing"

func TestFind(t *testing.T) {
	md := "# t\n\n```sh\na \\\n  b\n```\n\n```json\n{}\n```\n  ```js\nx()\n  ```\n```sh\nc\n```\n"
	sh := Find(md, "sh")
	if len(sh) != 2 || sh[0].Line != 3 || sh[0].Code != "a \\\n  b\n" || sh[1].Code != "c\n" {
		t.Fatalf("sh blocks: %+v", sh)
	}
	js := Find(md, "js", "javascript")
	if len(js) != 1 || js[0].Code != "x()\n" || js[0].Line != 11 {
		t.Fatalf("js blocks: %+v", js)
	}
}
