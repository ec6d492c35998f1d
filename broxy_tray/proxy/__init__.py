"""(proxy: built by a later issue.)"""
