"""(auth: built by a later issue.)"""
