"""Text files shipped with reagent: the tiny-model tokenizer corpus and chat template."""
