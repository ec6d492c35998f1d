"""(control: built by a later issue.)"""
