#!/usr/bin/env python3
"""Static cycle counts of the AVX2 row-dot inner loops on AMD Zen 3 (llvm-mca -mcpu=znver3),
for kernel decisions on a machine too loaded for timings to mean anything.

kernels.rs holds stand-alone copies of the block loops, before ("_old") and after the
interleaved-x rewrite (one block per iteration; scales, minima and sums left out where both
versions share them). Usage, from this directory:

    rustc --edition 2021 -O --crate-type=cdylib --emit asm -C debuginfo=0 kernels.rs -o k.s
    python3 mca.py q8_0_old q8_0_shift q4_1_old q4_1_p q5_0_old q5_0_tab q4_k_old q4_k_int
"""
import re,sys,subprocess
asm=open('k.s').read().split('\n')
def func(name):
    out=[];on=False
    for l in asm:
        if l.startswith(name+':'): on=True; continue
        if on:
            if l.strip().startswith('.cfi_endproc'): break
            out.append(l)
    return out
def loops(lines):
    # find labels and backward jumps; return largest loop body
    labels={}
    for i,l in enumerate(lines):
        m=re.match(r'^(\.LBB\w+):',l)
        if m: labels[m.group(1)]=i
    best=None
    for i,l in enumerate(lines):
        m=re.match(r'\s+j\w+\s+(\.LBB\w+)',l)
        if m and m.group(1) in labels and labels[m.group(1)]<i:
            body=lines[labels[m.group(1)]:i+1]
            if best is None or len(body)>len(best): best=body
    return best
for name in sys.argv[1:]:
    body=loops(func(name))
    body=[l for l in body if not l.strip().startswith('.') or l.startswith('.LBB')]
    src='\n'.join(l for l in body if not re.match(r'^\.LBB',l))
    r=subprocess.run(['llvm-mca','-mcpu=znver3','-iterations=200'],input=src,capture_output=True,text=True)
    info={k:v for k,v in re.findall(r'(Instructions|Total Cycles|Total uOps|Block RThroughput):\s+([\d.]+)',r.stdout)}
    n=len([l for l in body if l.startswith('\t') and not l.strip().startswith('.')])
    print(f"{name:16} insns/iter={n:4} cycles/iter={float(info['Total Cycles'])/200:.2f} RThroughput={info['Block RThroughput']}")
