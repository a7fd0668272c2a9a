"""Each selector form's worked examples: a source before, one edit, the source after.

They document the forms (``deepphoenix grammars`` users read them in the user guide's
Grammars page) and one test sweeps them all, so a form without an example, or an example
that no longer holds, fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepphoenix.grammar import Domain, Form, Kind, Selector, SiteSpec, Value
from deepphoenix.grammar import Grammar as _Grammar

__all__ = ["SELECTOR_EXAMPLES", "SelectorExample"]


@dataclass(frozen=True, slots=True)
class SelectorExample:
    """Selecting `selector` in `before` and setting it to `value` gives `after`."""

    selector: str
    before: str
    value: Value
    after: str
    choices: tuple[str, ...] = ()

    @property
    def form(self) -> Form:
        return Selector.parse(self.selector).form

    def grammar(self) -> _Grammar:
        """A one-site grammar (site ``x``) holding this example's selector."""
        value = self.value
        if self.choices:
            kind = Kind.CATEGORICAL
        elif isinstance(value, bool):
            kind = Kind.BOOL
        elif isinstance(value, int):
            kind = Kind.INT
        else:
            kind = Kind.FLOAT
        spec = SiteSpec("x", (Selector.parse(self.selector),), kind,
                        Domain(choices=self.choices), dotted=self.form is Form.CALL)
        return _Grammar("example", (spec,))


SELECTOR_EXAMPLES: tuple[SelectorExample, ...] = (
    SelectorExample("attribute:config.d_ff", "config.d_ff = 1024\n", 2048,
                    "config.d_ff = 2048\n"),
    SelectorExample("keyword:T5Config.d_ff", "c = transformers.T5Config(d_ff=1024)\n", 512,
                    "c = transformers.T5Config(d_ff=512)\n"),
    SelectorExample("field:GPTConfig.n_layer",
                    "class GPTConfig:\n    n_layer: int = 12\n", 6,
                    "class GPTConfig:\n    n_layer: int = 6\n"),
    SelectorExample("parameter:Block.__init__.dropout",
                    "class Block:\n    def __init__(self, dropout=0.1):\n        pass\n", 0.2,
                    "class Block:\n    def __init__(self, dropout=0.2):\n        pass\n"),
    SelectorExample("name:learning_rate", "learning_rate = 6e-4\n", 3e-4,
                    "learning_rate = 0.0003\n"),
    SelectorExample("name:get_lr.warmup",
                    "warmup = 10\ndef get_lr(it):\n    warmup = 100\n    return it / warmup\n",
                    200,
                    "warmup = 10\ndef get_lr(it):\n    warmup = 200\n    return it / warmup\n"),
    SelectorExample("keyword:normal_.std in _init_weights",
                    "def _init_weights(m):\n    normal_(m.weight, std=0.02)\n"
                    "def scaled(p):\n    normal_(p, std=0.01)\n", 0.03,
                    "def _init_weights(m):\n    normal_(m.weight, std=0.03)\n"
                    "def scaled(p):\n    normal_(p, std=0.01)\n"),
    SelectorExample("arg:F.layer_norm[4]", "y = F.layer_norm(x, s, w, b, 1e-5)\n", 1e-6,
                    "y = F.layer_norm(x, s, w, b, 1e-06)\n"),
    SelectorExample("item:betas[1]", "betas = (0.9, 0.95)\n", 0.99, "betas = (0.9, 0.99)\n"),
    SelectorExample("item:AdamW.betas[0]", "opt = AdamW(ps, betas=(0.9, 0.95))\n", 0.8,
                    "opt = AdamW(ps, betas=(0.8, 0.95))\n"),
    SelectorExample("entry:defaults[n_layer]", 'defaults = {"n_layer": 12, "n_head": 12}\n', 8,
                    'defaults = {"n_layer": 8, "n_head": 12}\n'),
    SelectorExample("call:self.act", "self.act = nn.GELU()\n", "nn.ReLU",
                    "self.act = nn.ReLU()\n", choices=("nn.GELU", "nn.ReLU")),
    SelectorExample("call:optimizer",
                    "optimizer = torch.optim.AdamW(params, lr=lr)\n", "torch.optim.SGD",
                    "optimizer = torch.optim.SGD(params, lr=lr)\n",
                    choices=("torch.optim.AdamW", "torch.optim.SGD")),
)
