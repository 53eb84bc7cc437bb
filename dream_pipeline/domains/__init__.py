"""The SPICA domains the loop can run, one folder each (the book still lives in the older layout until
the domain seam of issue 14 lands; `code_repair/` is the second domain's self-contained core)."""
