import cProfile, pstats, time
from benchmarks.shapes import chain
from benchmarks.core import nodes_of
from nestflow import Pipeline
from nestflow.callbacks.events import PipelineCallback
funcs, outs = chain()
p = Pipeline(nodes_of(funcs, outs), name="chain", callbacks=[PipelineCallback()])
p.run(v0=0)
t=time.perf_counter()
for _ in range(50): p.run(v0=0)
print("µs/node", (time.perf_counter()-t)/50/100*1e6)
pr = cProfile.Profile(); pr.enable()
for _ in range(50): p.run(v0=0)
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(22)
