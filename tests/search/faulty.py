"""A seed whose sites make candidates raise, hang or diverge, for the run tests."""

FAULTY_SOURCE = '''\
import time
config = transformers.AutoConfig.from_pretrained("Salesforce/codet5-small")
config.d_model = 64
config.num_layers = 1
config.num_decoder_layers = 1
config.d_ff = 128
config.num_heads = 2
config.d_kv = 32
crash = False
hang = False
diverge = False
if crash:
    raise RuntimeError("this candidate raises on purpose")
if hang:
    time.sleep(3600)
if diverge:
    config.initializer_factor = 1e30
model = transformers.T5ForConditionalGeneration(config)
'''

FAULTY_GRAMMAR = '''\
name = "faulty"
[sites.crash]
select = "name:crash"
kind = "bool"
[sites.hang]
select = "name:hang"
kind = "bool"
[sites.diverge]
select = "name:diverge"
kind = "bool"
[sites.d_ff]
select = "attribute:config.d_ff"
kind = "int"
min = 64
max = 256
mutation = "scale"
'''
