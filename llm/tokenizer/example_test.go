package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/llm/tokenizer"
)

// A BERT-style tokenizer.json: lower-casing, punctuation split, WordPiece
// subwords, [CLS] and [SEP] around the sequence.
func ExampleLoad() {
	tok, err := tokenizer.Load("testdata/wordpiece.json")
	if err != nil {
		log.Fatal(err)
	}
	ids, err := tok.Encode("Unbelievable, the cat played!")
	if err != nil {
		log.Fatal(err)
	}
	toks, _ := tok.Tokenize("Unbelievable, the cat played!")
	text, _ := tok.Decode(ids, true)
	fmt.Println(ids)
	fmt.Println(toks)
	fmt.Println(text)
	// Output:
	// [2 20 21 22 11 5 6 16 18 12 3]
	// [un ##believ ##able , the cat play ##ed !]
	// unbelievable, the cat played!
}
