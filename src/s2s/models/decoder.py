"""Recurrent decoder with input feeding and optional attention (plain PyTorch).

Each step: the RNN reads [embedding of the previous token; previous attentional vector] (input
feeding, Luong et al. 2015), its top output queries the attention over the encoder outputs, and
tanh(W [query; context]) is the attentional vector the output layer reads.  Without attention the
context is a fixed vector, the encoder's final state, as in the classic Cho et al. 2014 decoder.

All per-step state lives in :class:`DecoderState`, whose tensors are indexed by batch row first,
so search can reorder hypotheses with one ``index_select``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from s2s.models.attention import Attention
from s2s.models.dropout import Dropout


@dataclass
class DecoderState:
    """Everything a decoding step needs, batch-first. ``cell`` is None for GRUs; ``keys`` may be None."""

    hidden: torch.Tensor  # (B, L, H)
    cell: torch.Tensor | None  # (B, L, H)
    att_vector: torch.Tensor  # (B, H) previous attentional vector
    memory: torch.Tensor  # (B, S, M) encoder outputs
    keys: torch.Tensor | None  # (B, S, K) attention keys (None without attention)
    mask: torch.Tensor  # (B, S) True at real source positions
    fixed_context: torch.Tensor | None  # (B, M) context when there is no attention

    def index_select(self, index: torch.Tensor) -> DecoderState:
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = None if value is None else value.index_select(0, index)
        return DecoderState(**values)


def output_layers(embedding: nn.Embedding, hidden_size: int, tie: bool) -> tuple[nn.Linear | None, nn.Linear]:
    """The (optional) projection to the embedding size and the output layer over the vocabulary.

    With ``tie`` the output layer shares the target embedding table (Press & Wolf 2017).
    """
    emb_size, vocab_size = embedding.embedding_dim, embedding.num_embeddings
    if not tie:
        return None, nn.Linear(hidden_size, vocab_size, bias=False)
    pre_output = nn.Linear(hidden_size, emb_size, bias=False) if hidden_size != emb_size else None
    output_layer = nn.Linear(emb_size, vocab_size, bias=False)
    output_layer.weight = embedding.weight
    return pre_output, output_layer


class FirstRecurrentLayer(nn.Module):
    """The decoder's first LSTM/GRU layer, with its input projection split in two.

    The embedding part (``project_inputs``) does not depend on earlier steps, so teacher forcing
    computes it for all steps in one matmul; only the input-feeding part and the recurrence run
    per step.  Same function as ``nn.LSTMCell``/``nn.GRUCell`` on the concatenated input.
    """

    def __init__(self, rnn_type: str, emb_size: int, extra_size: int, hidden_size: int):
        super().__init__()
        if rnn_type not in ("lstm", "gru"):
            raise ValueError(f"rnn_type={rnn_type!r}: expected 'lstm' or 'gru'")
        self.rnn_type, self.hidden_size = rnn_type, hidden_size
        gates = 4 if rnn_type == "lstm" else 3
        self.emb_proj = nn.Linear(emb_size, gates * hidden_size)
        self.extra_proj = nn.Linear(extra_size, gates * hidden_size, bias=False) if extra_size else None
        self.hidden_proj = nn.Linear(hidden_size, gates * hidden_size, bias=rnn_type == "gru")

    def project_inputs(self, emb: torch.Tensor) -> torch.Tensor:
        return self.emb_proj(emb)

    def forward(
        self, pre: torch.Tensor, extra: torch.Tensor | None, h: torch.Tensor, c: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = pre if extra is None else pre + self.extra_proj(extra)
        if self.rnn_type == "lstm":
            # gates in float32 even under bf16 autocast: the cell state accumulates over many steps
            i, f, g, o = (x + self.hidden_proj(h)).float().chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        xr, xz, xn = x.chunk(3, dim=-1)
        hr, hz, hn = self.hidden_proj(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None


class RecurrentDecoder(nn.Module):
    """What both recurrent decoders share: embedding, attention, attentional layer, bridge and output.

    A subclass builds its recurrent layers between :meth:`__init__` and :meth:`_init_output`, so
    the modules keep the registration order (and so the state-dict keys and the seeded
    initialisation) they had before this base existed.  Subclasses supply ``forward`` (teacher
    forcing), ``step`` (one search step) and ``compile_step``.
    """

    def __init__(
        self, embedding: nn.Embedding, attention: Attention | None, rnn_type: str, hidden_size: int, num_layers: int
    ):
        super().__init__()
        self.embedding = embedding
        self.attention = attention
        self.rnn_type, self.hidden_size, self.num_layers = rnn_type, hidden_size, num_layers

    def _init_output(
        self,
        encoder_size: int,
        dropout: float,
        emb_dropout: float,
        hidden_dropout: float,
        tie_output: bool,
        bridge: bool,
    ) -> None:
        """The modules after the recurrent layers: dropouts, attentional layer, bridge, output layer."""
        self.layer_dropout = Dropout(dropout)
        self.emb_dropout = Dropout(emb_dropout)
        self.hidden_dropout = Dropout(hidden_dropout)
        self.att_layer = nn.Linear(self.hidden_size + encoder_size, self.hidden_size)
        self.bridge = nn.Linear(encoder_size, self.hidden_size) if bridge else None
        self.pre_output, self.output_layer = output_layers(self.embedding, self.hidden_size, tie_output)

    @property
    def has_attention(self) -> bool:
        """Search can return source attention weights (not without attention)."""
        return self.attention is not None

    def init_state(self, memory: torch.Tensor, final: torch.Tensor, mask: torch.Tensor) -> DecoderState:
        """Every layer starts from the bridged encoder state (or zeros); no attentional vector yet."""
        batch = memory.size(0)
        if self.bridge is not None:
            h0 = torch.tanh(self.bridge(final))
        else:
            h0 = memory.new_zeros(batch, self.hidden_size)
        hidden = h0.unsqueeze(1).expand(batch, self.num_layers, self.hidden_size).contiguous()
        return DecoderState(
            hidden=hidden,
            cell=torch.zeros_like(hidden) if self.rnn_type == "lstm" else None,
            att_vector=memory.new_zeros(batch, self.hidden_size),
            memory=memory,
            keys=self.attention.prepare(memory) if self.attention is not None else None,
            mask=mask,
            fixed_context=None if self.attention is not None else final,
        )

    def logits(self, att_vectors: torch.Tensor) -> torch.Tensor:
        if self.pre_output is not None:
            att_vectors = self.pre_output(att_vectors)
        return self.output_layer(att_vectors)


class RNNDecoder(RecurrentDecoder):
    """Conditional LSTM/GRU decoder; ``attention=None`` gives the no-attention baseline."""

    def __init__(
        self,
        embedding: nn.Embedding,
        encoder_size: int,
        attention: Attention | None,
        rnn_type: str = "lstm",
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        input_feeding: bool = True,
        tie_output: bool = False,
        bridge: bool = True,
    ):
        super().__init__(embedding, attention, rnn_type, hidden_size, num_layers)
        self.input_feeding = input_feeding
        extra = (hidden_size if input_feeding else 0) + (0 if attention else encoder_size)
        self.first_layer = FirstRecurrentLayer(rnn_type, embedding.embedding_dim, extra, hidden_size)
        cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[rnn_type]
        self.upper_layers = nn.ModuleList(cell(hidden_size, hidden_size) for _ in range(num_layers - 1))
        self._init_output(encoder_size, dropout, emb_dropout, hidden_dropout, tie_output, bridge)

    def _step(self, pre: torch.Tensor, state: DecoderState) -> tuple[DecoderState, torch.Tensor | None]:
        """One time step; ``pre`` is the first layer's (already projected) embedding input."""
        extra = []
        if self.input_feeding:
            extra.append(state.att_vector)
        if self.attention is None:
            extra.append(state.fixed_context)
        extra_in = torch.cat(extra, dim=-1) if len(extra) > 1 else (extra[0] if extra else None)
        lstm = state.cell is not None
        h, c = self.first_layer(pre, extra_in, state.hidden[:, 0], state.cell[:, 0] if lstm else None)
        hs, cs = [h], [c]
        for i, layer in enumerate(self.upper_layers, start=1):
            x = self.layer_dropout(h)
            if lstm:
                h, c = layer(x, (state.hidden[:, i], state.cell[:, i]))
            else:
                h = layer(x, state.hidden[:, i])
            hs.append(h)
            cs.append(c)
        query = h
        if self.attention is not None:
            context, weights = self.attention(query, state.keys, state.memory, state.mask)
        else:
            context, weights = state.fixed_context, None
        att_vector = self.hidden_dropout(torch.tanh(self.att_layer(torch.cat([query, context], dim=-1))))
        new_state = DecoderState(
            torch.stack(hs, dim=1),
            torch.stack(cs, dim=1) if lstm else None,
            att_vector,
            state.memory,
            state.keys,
            state.mask,
            state.fixed_context,
        )
        return new_state, weights

    def compile_step(self, mode: str = "default") -> None:
        """Compile the time step that training and search both loop over (see :mod:`s2s.inference.compilation`)."""
        self._step = torch.compile(self._step, mode=mode, dynamic=True)

    def forward(self, tgt_in: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Teacher forcing: ``tgt_in`` (B, T) -> logits (B, T, V). The output layer runs once on all steps."""
        # the embedding part of the first layer's input projection, for all steps in one matmul
        pre = self.first_layer.project_inputs(self.emb_dropout(self.embedding(tgt_in)))
        outputs = []
        for t in range(tgt_in.size(1)):
            state, _ = self._step(pre[:, t], state)
            outputs.append(state.att_vector)
        return self.logits(torch.stack(outputs, dim=1))

    def step(
        self, prev_tokens: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One search step: ``prev_tokens`` (B,) -> logits (B, V), new state, attention weights (B, S) or None."""
        pre = self.first_layer.project_inputs(self.emb_dropout(self.embedding(prev_tokens)))
        state, weights = self._step(pre, state)
        return self.logits(state.att_vector), state, weights
