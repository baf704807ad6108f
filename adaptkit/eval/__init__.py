"""Scoring: speaker-attributed ASR, degeneration, turn taking, and the report writer.

Modules (import the one you need; this package imports none of them, so it stays light):
`text` (tokens and languages), `speaker_metrics` (cpWER/cpCER, WER, WDER, DER), `degeneration`
(loops, leaked tokens, blow-ups), `turn_metrics` (turn-end and turn-tag classification),
`report` (JSON, Markdown and PNG), `score` (whole sets, with breakdowns per language and set).
"""
