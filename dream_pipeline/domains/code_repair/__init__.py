"""CodeRepair: each epoch poses a buggy function; candidate fixes are peer-reviewed blind and run
against hidden tests in the sandbox, which know the answer. See docs/code_repair.md."""
