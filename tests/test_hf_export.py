"""Hugging Face export/import: transformers loads the export natively (Llama or Qwen3) with the
same logits, the same token ids and the same chat prompt as chatforge; import gives back the
very same weights. Every model and tokenizer is built here: nothing is downloaded."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never reach the Hub
transformers = pytest.importorskip("transformers")

from chatforge import cli  # noqa: E402
from chatforge.errors import InputError  # noqa: E402
from chatforge.model.checkpoint import load_model, save_model  # noqa: E402
from chatforge.model.gpt import GPT, GPTConfig  # noqa: E402
from chatforge.model.hf import export_hf, import_hf  # noqa: E402
from chatforge.tokenizer.bpe import train_bpe  # noqa: E402
from chatforge.tokenizer.chat import render_prompt  # noqa: E402

# Written for these tests: a few languages and scripts, code and emoji.
TRAIN_TEXT = [
    "The river keeps the old mill turning, and the miller counts sacks every evening. " * 8,
    "Bugün hava çok güzel; İstanbul'da çay içip Ankara'dan gelen arkadaşları bekliyoruz. " * 8,
    "我们今天在图书馆学习数学和历史，明天去公园散步。" * 8,
    "def area(width, height):\n    return width * height  # rectangle\n\nprint(area(3, 4))\n" * 8,
    "Party time 🎉🎈 and coffee ☕ with friends 👩‍💻 ok? " * 8,
]
SAMPLE = [
    "Hello there! How many sacks did the miller count on Tuesday, 14 March?",
    "Şişli'de ılık bir öğleden sonra; ĞÜŞİÖÇ ğüşiöç — İyi günler!",
    "数学很有趣。你明天去哪里？",
    "class Stack:\n    def push(self, x):\n\t\tself.items.append(x)  # O(1)\r\n",
    "🎉 👩‍💻 ☕️ 🇹🇷 emoji sequences, naïve café, Ελληνικά, русский",
    "  leading spaces, trailing spaces   \n\n\nand blank lines",
]

SHAPES = {
    "llama": dict(qk_norm=False, tie_embeddings=False, n_kv_head=4),
    "llama-gqa-tied": dict(qk_norm=False, tie_embeddings=True, n_kv_head=2),
    "qwen3": dict(qk_norm=True, tie_embeddings=False, n_kv_head=4),
    "qwen3-gqa-tied": dict(qk_norm=True, tie_embeddings=True, n_kv_head=1),
}


@pytest.fixture(scope="module")
def tok():
    return train_bpe(TRAIN_TEXT, vocab_size=600)


def tiny_model(tok, **shape) -> GPT:
    """A random model whose norm gains are not all ones (so a skipped q/k-norm would show)."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=4, seq_len=64,
                    rope_theta=5000.0, norm_eps=1e-6, **{"mlp": "swiglu", **shape})
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", list(SHAPES))
def test_transformers_loads_the_export_natively_with_the_same_logits(name, tok, tmp_path):
    model = tiny_model(tok, **SHAPES[name])
    export_hf(model, tok, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    expected = "Qwen3ForCausalLM" if model.cfg.qk_norm else "LlamaForCausalLM"
    assert type(hf).__name__ == expected
    c = hf.config
    assert (c.head_dim, c.num_key_value_heads, c.rms_norm_eps) == (16, model.cfg.n_kv_head, 1e-6)
    assert c.rope_parameters["rope_theta"] == 5000.0
    assert c.tie_word_embeddings == model.cfg.tie_embeddings
    assert (c.bos_token_id, c.pad_token_id) == (tok.bos_id, tok.pad_id)
    if model.cfg.tie_embeddings:
        assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(0, tok.vocab_size, (3, model.cfg.seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert (ours - theirs).abs().max().item() < 1e-4


def test_the_exported_tokenizer_gives_the_same_ids_and_text(tok, tmp_path):
    export_hf(tiny_model(tok, **SHAPES["llama"]), tok, tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in SAMPLE:
        ids = tok.encode(text)
        assert hf_tok.encode(text, add_special_tokens=False) == ids, text
        assert hf_tok.encode(text) == [tok.bos_id] + ids  # Llama's way, as chatforge's base prompts
        assert hf_tok.decode(ids) == text
    assert hf_tok.bos_token_id == tok.bos_id and hf_tok.pad_token_id == tok.pad_id
    assert hf_tok.eos_token_id == tok.special_id("<|assistant_end|>")


def test_the_chat_template_renders_the_same_prompt_ids(tok, tmp_path):
    export_hf(tiny_model(tok, **SHAPES["qwen3"]), tok, tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    conversations = [
        [{"role": "user", "content": SAMPLE[0]}],
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": SAMPLE[1]},
         {"role": "assistant", "content": SAMPLE[2]}, {"role": "user", "content": SAMPLE[3]}],
    ]
    for messages in conversations:
        rendered = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
        assert list(ids) == render_prompt(tok, messages)


@pytest.mark.parametrize("name", ["llama", "qwen3-gqa-tied"])
def test_import_of_the_export_gives_back_identical_weights(name, tok, tmp_path):
    model = tiny_model(tok, **SHAPES[name])
    export_hf(model, tok, tmp_path)
    back, back_tok, why_not = import_hf(tmp_path)
    assert back.cfg == model.cfg and why_not == ""
    assert back.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    assert back_tok.encode(SAMPLE[1]) == tok.encode(SAMPLE[1])
    if model.cfg.tie_embeddings:
        assert back.lm_head.weight is back.embed_tokens.weight


def test_relu2_is_refused_in_one_line(tok, tmp_path):
    with pytest.raises(InputError, match="relu2 MLP: no native transformers class") as info:
        export_hf(tiny_model(tok, mlp="relu2"), tok, tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "model.safetensors").exists()


def test_import_refuses_what_chatforge_cannot_hold(tok, tmp_path):
    export_hf(tiny_model(tok, **SHAPES["llama"]), tok, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value, named in [("attention_bias", True, "attention_bias"),
                              ("architectures", ["MistralForCausalLM"], "MistralForCausalLM"),
                              ("rope_parameters", {"rope_type": "yarn", "factor": 4.0}, "rope_parameters")]:
        (tmp_path / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(InputError, match=named):
            import_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 64}))
    with pytest.raises(InputError, match=r"mlp\.gate_proj\.weight has shape \(192, 64\), config says \(64, 64\)"):
        import_hf(tmp_path)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_cli_exports_a_run_and_imports_it_back(tok, tmp_path, capsys):
    run = tmp_path / "run"
    model = tiny_model(tok, **SHAPES["qwen3-gqa-tied"])
    save_model(model, run / "checkpoints" / "sft")
    tok.save(run / "tokenizer")
    code, out, err = run_cli(["export", str(run), "--out", str(tmp_path / "hf")], capsys)
    assert code == 0, err
    assert json.loads(out)["checkpoint"].endswith("sft")
    code, _, err = run_cli(["export", str(run), "--out", str(tmp_path / "hf")], capsys)
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")], capsys)
    assert code == 0, err
    back = load_model(tmp_path / "back")
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    # The imported checkpoint carries its tokenizer, so it exports again on its own.
    code, _, err = run_cli(["export", str(tmp_path / "back"), "--out", str(tmp_path / "again")], capsys)
    assert code == 0, err
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tmp_path / "hf" / "model.safetensors").read_bytes()


def test_cli_refuses_relu2_in_one_line(tok, tmp_path, capsys):
    save_model(tiny_model(tok, mlp="relu2"), tmp_path / "run" / "checkpoints" / "sft")
    tok.save(tmp_path / "run" / "tokenizer")
    code, _, err = run_cli(["export", str(tmp_path / "run"), "--out", str(tmp_path / "hf")], capsys)
    assert code == 2 and "relu2" in err and len(err.strip().splitlines()) == 1
