"""Neural quines beyond scoring them: the ouroboros, a source quine whose printed file
becomes the next generation only once grounded against its trusted parent. (The quine
seeds live in `deepphoenix.seeds`, their objective is the built-in ``self-replication``.)
"""

from deepphoenix.quine._ouroboros import Generation, ouroboros

__all__ = ["Generation", "ouroboros"]
